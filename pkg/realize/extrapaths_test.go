package realize

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/runpod-comfy/worker/pkg/lock"
)

func TestExtraModelPaths(t *testing.T) {
	l := &lock.Lock{Models: []lock.Model{
		{TargetPath: "$MODELS_DIR/mmaudio/m.safetensors"},
		{TargetPath: "$MODELS_DIR/loras/l.safetensors"},
		{TargetPath: "$COMFY_HOME/custom_nodes/n/ckpt.pth"},
		{TargetPath: "$MODELS_DIR/top.safetensors"},
	}}
	for _, tc := range []struct{ build, models, base string }{
		{"/runpod-volume/builds/comfy-x", "/runpod-volume/models", "../../models"},
		{"/runpod-volume/builds/comfy-x", "/mnt/o'ther/models", "/mnt/o'ther/models"},
	} {
		out := ExtraModelPaths(tc.build, tc.models, l)
		var doc map[string]map[string]any
		if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, out)
		}
		sec := doc["runpod_comfy_models"]
		if sec["base_path"] != tc.base || sec["is_default"] != true {
			t.Errorf("base_path = %v, want %s", sec["base_path"], tc.base)
		}
		for _, f := range append(StandardFolders, "mmaudio") {
			if v, ok := sec[f].(string); !ok || v != f+"/" {
				t.Errorf("folder %s = %#v, want the string %q", f, sec[f], f+"/")
			}
		}
		for k := range sec {
			if strings.Contains(k, "$") || k == "custom_nodes" {
				t.Errorf("bogus key %q", k)
			}
		}
	}
}
