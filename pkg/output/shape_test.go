package output

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// TestShapes renders results the way each format's clients read them.
// The worker-comfyui rows are its handler's result rules (which files go
// into images[], when a job with nothing to return fails); the original
// rows are the original tool's.
func TestShapes(t *testing.T) {
	b64 := func(name, kind, typ string) File {
		return File{NodeID: "9", Kind: kind, Filename: name, Type: typ, Size: 3, Base64: NewBlob([]byte("abc"))}
	}
	png, preview := b64("a.png", "images", "output"), b64("p.png", "images", "temp")
	webp := b64("anim.webp", "images", "output")
	gif := b64("clip.gif", "gifs", "output")           // VHS's GIF: left out
	vhsMP4 := b64("clip.mp4", "gifs", "output")        // VHS's video: videos[]
	nativeMP4 := b64("native.mp4", "images", "output") // SaveVideo lists under images
	flac := b64("song.flac", "audio", "output")        // audio: left out
	s3 := File{NodeID: "9", Kind: "images", Filename: "a.png", Type: "output", Size: 3, URL: "https://s3.example/b/k", S3Path: "s3://b/k", SignedURL: "https://s3.example/b/k?X-Amz-Signature=x"}
	plainS3 := s3
	plainS3.SignedURL = ""
	gcs := File{NodeID: "9", Kind: "videos", Filename: "x.mp4", Type: "output", Size: 7, URL: "https://storage.googleapis.com/b/o", GCSPath: "gs://b/o"}
	const abc = "YWJj"

	tests := []struct {
		name    string
		format  string
		r       Result
		want    string // JSON
		wantErr *WCFailure
		errIs   error
	}{
		{name: "wc: images only, previews and other kinds left out", format: FormatWorkerComfyUI,
			r:    Result{OutputMode: "base64", Outputs: []File{preview, png, gif, flac, webp}},
			want: `{"images":[{"filename":"a.png","type":"base64","data":"` + abc + `"},{"filename":"anim.webp","type":"base64","data":"` + abc + `"}]}`},
		{name: "wc: videos from any key go to videos[]", format: FormatWorkerComfyUI,
			r:    Result{OutputMode: "base64", Outputs: []File{png, vhsMP4, nativeMP4}},
			want: `{"images":[{"filename":"a.png","type":"base64","data":"` + abc + `"}],"videos":[{"filename":"clip.mp4","type":"base64","data":"` + abc + `"},{"filename":"native.mp4","type":"base64","data":"` + abc + `"}]}`},
		{name: "wc: only a video is a success without status", format: FormatWorkerComfyUI,
			r:    Result{OutputMode: "base64", Outputs: []File{vhsMP4}},
			want: `{"images":[],"videos":[{"filename":"clip.mp4","type":"base64","data":"` + abc + `"}]}`},
		{name: "wc: URLs are s3_url, the presigned one first", format: FormatWorkerComfyUI,
			r:    Result{OutputMode: "s3", Outputs: []File{s3, plainS3}},
			want: `{"images":[{"filename":"a.png","type":"s3_url","data":"https://s3.example/b/k?X-Amz-Signature=x"},{"filename":"a.png","type":"s3_url","data":"https://s3.example/b/k"}]}`},
		{name: "wc: partial success keeps images and lists errors", format: FormatWorkerComfyUI,
			r:    Result{OutputMode: "base64", Outputs: []File{png}, Warnings: []string{"Workflow execution error: Node Type: KSampler, Node ID: 3, Message: boom"}},
			want: `{"errors":["Workflow execution error: Node Type: KSampler, Node ID: 3, Message: boom"],"images":[{"filename":"a.png","type":"base64","data":"` + abc + `"}]}`},
		{name: "wc: nothing returned and nothing wrong", format: FormatWorkerComfyUI,
			r:    Result{OutputMode: "base64", Outputs: []File{flac, preview}},
			want: `{"images":[],"status":"success_no_images"}`},
		{name: "wc: nothing returned plus warnings fails", format: FormatWorkerComfyUI,
			r:       Result{OutputMode: "base64", Outputs: []File{flac}, Warnings: []string{"node 4 (SaveImage) was skipped: x"}},
			wantErr: &WCFailure{Message: "Job processing failed", Details: []string{"node 4 (SaveImage) was skipped: x"}}},
		{name: "wc: no outputs in history fails", format: FormatWorkerComfyUI,
			r:       Result{PromptID: "p-1", NoOutputs: true},
			wantErr: &WCFailure{Message: "Job processing failed", Details: []string{"No outputs found in history for prompt p-1."}}},
		{name: "original: first collected file, previews skipped", format: FormatOriginal,
			r:    Result{VersionID: "v", OutputMode: "base64", Outputs: []File{preview, png, webp}},
			want: `{"base64":"` + abc + `","extension":".png","output_mode":"base64","size":3,"version_id":"v"}`},
		{name: "original: keys it did not collect are skipped", format: FormatOriginal,
			r:    Result{VersionID: "v", OutputMode: "base64", Outputs: []File{{Kind: "3d", Filename: "m.glb", Type: "output", Base64: NewBlob(nil)}, flac}},
			want: `{"base64":"` + abc + `","extension":".flac","output_mode":"base64","size":3,"version_id":"v"}`},
		{name: "original: gcs", format: FormatOriginal,
			r:    Result{VersionID: "v", OutputMode: "gcs", Outputs: []File{gcs}},
			want: `{"extension":".mp4","gcs_path":"gs://b/o","output_mode":"gcs","size":7,"url":"https://storage.googleapis.com/b/o","version_id":"v"}`},
		{name: "original: s3", format: FormatOriginal,
			r:    Result{VersionID: "v", OutputMode: "s3", Outputs: []File{s3}},
			want: `{"extension":".png","output_mode":"s3","s3_path":"s3://b/k","signed_url":"https://s3.example/b/k?X-Amz-Signature=x","size":3,"url":"https://s3.example/b/k","version_id":"v"}`},
		{name: "original: no file, in its words", format: FormatOriginal,
			r: Result{VersionID: "v", OutputMode: "base64", Outputs: []File{preview}}, errIs: ErrNoArtifacts},
		{name: "default keeps everything", format: "",
			r:    Result{VersionID: "v", OutputMode: "base64", Outputs: []File{flac}},
			want: `{"version_id":"v","output_mode":"base64","outputs":[{"node_id":"9","kind":"audio","filename":"song.flac","type":"output","content_type":"","size":3,"sha256":"","base64":"` + abc + `"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Shape(tc.format, tc.r)
			var wf *WCFailure
			switch {
			case tc.wantErr != nil:
				if !errors.As(err, &wf) || !reflect.DeepEqual(wf, tc.wantErr) {
					t.Fatalf("error %#v, want %#v", err, tc.wantErr)
				}
				return
			case tc.errIs != nil:
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("error %v, want %v", err, tc.errIs)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tc.want {
				t.Errorf("\n got %s\nwant %s", b, tc.want)
			}
		})
	}
	if _, err := Shape("xml", Result{}); err == nil || !ValidFormat("") || ValidFormat("xml") {
		t.Error("unknown format accepted")
	}
}

func TestWCSection(t *testing.T) {
	for _, tc := range []struct{ kind, name, typ, want string }{
		{"images", "a.png", "output", "images"},
		{"images", "a.png", "temp", ""},
		{"images", "a.gif", "output", "images"},
		{"images", "v.mp4", "output", "videos"},
		{"gifs", "v.webm", "output", "videos"},
		{"videos", "v.mov", "output", "videos"},
		{"gifs", "a.gif", "output", ""},
		{"audio", "a.flac", "output", ""},
		{"images", "a.wav", "output", ""},
		{"3d", "m.glb", "output", ""},
	} {
		if got := WCSection(tc.kind, tc.name, tc.typ); got != tc.want {
			t.Errorf("WCSection(%s, %s, %s) = %q, want %q", tc.kind, tc.name, tc.typ, got, tc.want)
		}
	}
}
