package models

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	hf := func(repo, rev, path string) Source {
		return Source{Kind: KindHF, Repo: repo, Revision: rev, Path: path}
	}
	tests := []struct {
		in    string
		want  Source
		canon string
		name  string
	}{
		// hf: every spelling found in the original's specs and docs.
		{"hf://Comfy-Org/Wan_2.2_ComfyUI_Repackaged/split_files/vae/wan_2.1_vae.safetensors",
			hf("Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "main", "split_files/vae/wan_2.1_vae.safetensors"),
			"hf://Comfy-Org/Wan_2.2_ComfyUI_Repackaged@main/split_files/vae/wan_2.1_vae.safetensors", "wan_2.1_vae.safetensors"},
		{"hf://Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors",
			hf("Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "main", "split_files/vae/wan_2.1_vae.safetensors"), "", ""},
		{"hf://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/vae/wan_2.1_vae.safetensors",
			hf("Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "main", "split_files/vae/wan_2.1_vae.safetensors"), "", ""},
		{"hf://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/split_files/vae/wan_2.1_vae.safetensors",
			hf("Comfy-Org/Wan_2.2_ComfyUI_Repackaged", "main", "split_files/vae/wan_2.1_vae.safetensors"), "", ""},
		{"hf://capstonedubtrack/Indiclanguagedubbing/resolve/416598a2eefa2f1b02bea859bda45f18208a53cb/wav2lip_gan.pth",
			hf("capstonedubtrack/Indiclanguagedubbing", "416598a2eefa2f1b02bea859bda45f18208a53cb", "wav2lip_gan.pth"),
			"hf://capstonedubtrack/Indiclanguagedubbing@416598a2eefa2f1b02bea859bda45f18208a53cb/wav2lip_gan.pth", "wav2lip_gan.pth"},
		{"hf://runwayml/stable-diffusion-v1-5/v1-5-pruned.safetensors?rev=main",
			hf("runwayml/stable-diffusion-v1-5", "main", "v1-5-pruned.safetensors"), "", "v1-5-pruned.safetensors"},
		{"hf://org/repo/a/b.bin?revision=v1.0", hf("org/repo", "v1.0", "a/b.bin"), "hf://org/repo@v1.0/a/b.bin", "b.bin"},
		{"hf://org/repo@dev/a.bin", hf("org/repo", "dev", "a.bin"), "hf://org/repo@dev/a.bin", ""},
		{"hf://org/repo@refs%2Fpr%2F3/a.bin", hf("org/repo", "refs/pr/3", "a.bin"), "hf://org/repo@refs%2Fpr%2F3/a.bin", ""},
		{"hf://org/repo/a.bin?rev=refs/pr/3", hf("org/repo", "refs/pr/3", "a.bin"), "hf://org/repo@refs%2Fpr%2F3/a.bin", ""},
		{"huggingface://org/repo/blob/main/a.bin?download=true", hf("org/repo", "main", "a.bin"), "", ""},
		{"HF://hf.co/org/repo/my%20file.bin", hf("org/repo", "main", "my file.bin"), "hf://org/repo@main/my%20file.bin", "my file.bin"},
		{"hf://datasets/org/data/x.parquet",
			Source{Kind: KindHF, RepoType: "datasets", Repo: "org/data", Revision: "main", Path: "x.parquet"},
			"hf://datasets/org/data@main/x.parquet", "x.parquet"},
		// civitai: both forms, which the original parsed as a host.
		{"civitai://models/12345", Source{Kind: KindCivitai, ModelID: "12345"}, "civitai://api/download/models/12345", ""},
		{"civitai://api/download/models/1996092?type=Model&format=SafeTensor",
			Source{Kind: KindCivitai, ModelID: "1996092", Query: "format=SafeTensor&type=Model"},
			"civitai://api/download/models/1996092?format=SafeTensor&type=Model", ""},
		{"civitai:///api/download/models/7", Source{Kind: KindCivitai, ModelID: "7"}, "", ""},
		{"civitai://models/4201?modelVersionId=130072", Source{Kind: KindCivitai, ModelID: "130072"}, "civitai://api/download/models/130072", ""},
		// http(s)
		{"https://huggingface.co/Comfy-Org/R/resolve/main/split_files/loras/x.safetensors",
			Source{Kind: KindHTTP, URL: "https://huggingface.co/Comfy-Org/R/resolve/main/split_files/loras/x.safetensors"}, "", "x.safetensors"},
		{"HTTPS://Example.COM/m.safetensors#frag", Source{Kind: KindHTTP, URL: "https://example.com/m.safetensors"}, "https://example.com/m.safetensors", "m.safetensors"},
		{"http://127.0.0.1:8080/a/b.ckpt?x=1", Source{Kind: KindHTTP, URL: "http://127.0.0.1:8080/a/b.ckpt?x=1"}, "", "b.ckpt"},
		// gs
		{"gs://my-bucket/models/model.safetensors", Source{Kind: KindGCS, Bucket: "my-bucket", Path: "models/model.safetensors"}, "", "model.safetensors"},
		// file and local paths
		{"file:///path/to/local/model.safetensors", Source{Kind: KindFile, Path: "/path/to/local/model.safetensors"}, "", "model.safetensors"},
		{"file://localhost/srv/m.bin", Source{Kind: KindFile, Path: "/srv/m.bin"}, "file:///srv/m.bin", "m.bin"},
		{"/abs/dir/../m.bin", Source{Kind: KindFile, Path: "/abs/m.bin"}, "file:///abs/m.bin", "m.bin"},
		{"./rel/m.bin", Source{Kind: KindFile, Path: "rel/m.bin"}, "rel/m.bin", "m.bin"},
		{"../up/m.bin", Source{Kind: KindFile, Path: "../up/m.bin"}, "../up/m.bin", "m.bin"},
		{"./hf:odd", Source{Kind: KindFile, Path: "hf:odd"}, "./hf:odd", "hf:odd"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSource(tt.in)
			if err != nil {
				t.Fatalf("ParseSource: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			if tt.canon != "" && got.Canonical() != tt.canon {
				t.Errorf("Canonical() = %q, want %q", got.Canonical(), tt.canon)
			}
			if tt.name != "" && got.FileName() != tt.name {
				t.Errorf("FileName() = %q, want %q", got.FileName(), tt.name)
			}
			again, err := ParseSource(got.Canonical())
			if err != nil || again != got {
				t.Errorf("canonical %q re-parses to %+v, %v", got.Canonical(), again, err)
			}
		})
	}
}

func TestParseSourceErrors(t *testing.T) {
	tests := []struct {
		in          string
		wantMsg     string
		placeholder bool
	}{
		{"", "empty", false},
		{"hf://...", "placeholder", true},
		{"hf://<org>/<repo>/<file>", "placeholder", true},
		{"civitai://models/<id>", "placeholder", true},
		{"hf://org/repo/%2E%2E%2E", "placeholder", true},
		{"s3://bucket/key", `unsupported scheme "s3"`, false},
		{"ftp://host/file", `unsupported scheme "ftp"`, false},
		{"hf:org/repo/file", `followed by "//"`, false},
		{"hf://org/repo", "want hf://org/repo", false},
		{"hf://org/../x/file", "bad repo id", false},
		{"hf://org/repo/a//b", "empty, '.' or '..'", false},
		{"hf://org/repo/a/../../b", "'..'", false},
		{"hf://org/repo@v1/resolve/v2/file", "conflicting revisions", false},
		{"hf://org/repo/file?rev=a&rev=b", "conflicting revisions", false},
		{"hf://org/repo/file?foo=1", `unknown query parameter "foo"`, false},
		{"hf://org/repo@../file", "bad revision", false},
		{"hf://org/repo/bad%zzescape", "bad escape", false},
		{"civitai://12345", "want civitai://models/<id>", false},
		{"civitai://models/abc", "is not a number", false},
		{"civitai://api/download/models/", "is not a number", false},
		{"https:///nohost", "no host", false},
		{"gs://bucket", "want gs://bucket/object", false},
		{"gs://Bad_Bucket!/x", "bad bucket name", false},
		{"file://server/share/x", "not supported", false},
		{" hf://org/repo/file", "whitespace", false},
		{"/", "not a file path", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseSource(tt.in)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			var se *SourceError
			if !errors.As(err, &se) {
				t.Fatalf("error is %T, want *SourceError", err)
			}
			if se.Placeholder != tt.placeholder {
				t.Errorf("Placeholder = %v, want %v", se.Placeholder, tt.placeholder)
			}
		})
	}
}

func TestParseSourceErrorRedactsToken(t *testing.T) {
	_, err := ParseSource("https://user:hunter22@/x?token=s3cr3t-value")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, secret := range []string{"hunter22", "s3cr3t-value"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks %q", err, secret)
		}
	}
}

func TestRedactString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://civitai.com/api/download/models/1?type=Model&token=abc123", "https://civitai.com/api/download/models/1?type=Model&token=REDACTED"},
		{"https://u:p@host/x", "https://REDACTED@host/x"},
		{"https://cdn/x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA&ok=1", "https://cdn/x?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&ok=1"},
		{"hf://org/repo@main/file", "hf://org/repo@main/file"},
		{"https://host/p@x/y", "https://host/p@x/y"},
	}
	for _, tt := range tests {
		if got := RedactString(tt.in); got != tt.want {
			t.Errorf("RedactString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		"hf://org/repo/file.bin", "hf://huggingface.co/org/repo/resolve/main/a/b.bin?rev=main",
		"hf://org/repo@refs%2Fpr%2F1/x", "civitai://models/1?modelVersionId=2", "civitai://api/download/models/3?type=Model&format=SafeTensor",
		"https://example.com/a%20b.bin?x=1#f", "gs://bucket/obj/x", "file:///a/b", "./x/y", "../z", "hf://...",
		"s3://b/k", "hf://datasets/o/r/f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := ParseSource(s)
		if err != nil {
			return
		}
		c := src.Canonical()
		again, err := ParseSource(c)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", c, s, err)
		}
		if again != src {
			t.Fatalf("canonical %q of %q parses to %+v, want %+v", c, s, again, src)
		}
		if again.Canonical() != c {
			t.Fatalf("canonical form is not stable: %q -> %q", c, again.Canonical())
		}
	})
}
