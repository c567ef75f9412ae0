# syntax=docker/dockerfile:1
# The image RunPod runs: the worker binary on a CUDA + PyTorch base.
#
# Base: runpod/pytorch (CUDA 12.8, cuDNN, Python 3.11, torch 2.8). Builds on
# the network volume are made with options.system_site_packages so they
# reuse this torch instead of downloading ~3 GB per version, and a build's
# venv points at this image's interpreter: realizing on a Pod started from
# the same image and serving from this one gives the same interpreter path
# and ABI on both mounts (/workspace and /runpod-volume).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/worker ./worker

FROM runpod/pytorch:2.8.0-py3.11-cuda12.8.1-cudnn-devel-ubuntu22.04
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COMFY_LOG_FORMAT=json
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates ffmpeg libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m pip install --no-cache-dir uv
WORKDIR /app
COPY --from=build /out/worker /usr/local/bin/worker
COPY versions/ /app/versions/
COPY test_input.json /app/test_input.json
# Without a subcommand the worker serves RunPod jobs (RUNPOD_WEBHOOK_GET_JOB
# is set by the platform); it waits up to RUNPOD_VOLUME_WAIT seconds for the
# network volume first.
ENTRYPOINT ["/usr/local/bin/worker"]
