package comfy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestRewriteInputs(t *testing.T) {
	names := map[string]string{"cat.png": "job1_cat.png", "clip.mp4": "job1_clip.mp4", "mask.png": "job1_mask.png"}
	tests := []struct {
		name     string
		workflow string
		want     map[string]map[string]any // node -> input -> value after rewriting
		rewrites int
	}{
		{
			name:     "LoadImage image",
			workflow: `{"1": {"class_type": "LoadImage", "inputs": {"image": "cat.png", "upload": "image"}}}`,
			want:     map[string]map[string]any{"1": {"image": "job1_cat.png", "upload": "image"}},
			rewrites: 1,
		},
		{
			name:     "LoadImageMask image",
			workflow: `{"1": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}}}`,
			want:     map[string]map[string]any{"1": {"image": "job1_mask.png", "channel": "alpha"}},
			rewrites: 1,
		},
		{
			name:     "VHS_LoadVideo video",
			workflow: `{"1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "clip.mp4", "force_rate": 0}}}`,
			want:     map[string]map[string]any{"1": {"video": "job1_clip.mp4", "force_rate": json.Number("0")}},
			rewrites: 1,
		},
		{
			name:     "any custom loader input",
			workflow: `{"7": {"class_type": "MyLoader", "inputs": {"path": "cat.png"}}}`,
			want:     map[string]map[string]any{"7": {"path": "job1_cat.png"}},
			rewrites: 1,
		},
		{
			name:     "annotated name",
			workflow: `{"1": {"class_type": "LoadImage", "inputs": {"image": "cat.png [input]"}}}`,
			want:     map[string]map[string]any{"1": {"image": "job1_cat.png [input]"}},
			rewrites: 1,
		},
		{
			name:     "other folders and partial matches untouched",
			workflow: `{"1": {"class_type": "X", "inputs": {"a": "cat.png [output]", "b": "cat.png.bak", "c": "my cat.png", "d": ["cat.png", 0]}}}`,
			want:     map[string]map[string]any{"1": {"a": "cat.png [output]", "b": "cat.png.bak", "c": "my cat.png", "d": []any{"cat.png", json.Number("0")}}},
		},
		{
			name:     "unknown names untouched",
			workflow: `{"1": {"class_type": "LoadImage", "inputs": {"image": "dog.png"}}}`,
			want:     map[string]map[string]any{"1": {"image": "dog.png"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wf := mustWorkflow(t, tt.workflow)
			before, _ := json.Marshal(wf)
			out, rewrites := RewriteInputs(wf, names)
			if len(rewrites) != tt.rewrites {
				t.Errorf("rewrites = %+v, want %d", rewrites, tt.rewrites)
			}
			for id, inputs := range tt.want {
				for k, v := range inputs {
					got, _ := json.Marshal(out[id].Inputs[k])
					want, _ := json.Marshal(v)
					if string(got) != string(want) {
						t.Errorf("node %s input %s = %s, want %s", id, k, got, want)
					}
				}
			}
			if after, _ := json.Marshal(wf); string(after) != string(before) {
				t.Errorf("original workflow modified:\n%s\n%s", before, after)
			}
		})
	}
}

func TestCheckInputName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "../x.png", "a/b.png", `a\b.png`, "x\x00.png", string(make([]byte, 300))} {
		if CheckInputName(bad) == nil {
			t.Errorf("CheckInputName(%q) accepted", bad)
		}
	}
	for _, good := range []string{"cat.png", "my cat (1).png", ".hidden.png", "ü.jpg"} {
		if err := CheckInputName(good); err != nil {
			t.Errorf("CheckInputName(%q) = %v", good, err)
		}
	}
	if got := UniqueInputName("job1", "cat.png"); got != "job1_cat.png" {
		t.Errorf("UniqueInputName = %q", got)
	}
}

func TestParseWorkflow(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"ui format", `{"nodes": [{"id": 1}], "links": [], "version": 0.4}`, "UI format"},
		{"not an object", `[1, 2]`, "not a JSON object"},
		{"empty", `{}`, "no nodes"},
		{"node without class", `{"1": {"inputs": {}}}`, `node "1" has no class_type`},
		{"node not an object", `{"1": 5}`, `node "1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWorkflow([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}

	// Big seeds, _meta and unknown keys survive a round trip exactly.
	in := `{"3":{"_meta":{"title":"KSampler"},"class_type":"KSampler","inputs":{"cfg":7.5,"model":["4",0],"seed":1125899906842624123},"is_changed":["x"]}}`
	wf, err := ParseWorkflow([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(wf)
	if err != nil || string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s (%v)", out, in, err)
	}
	clone := wf.Clone()
	clone["3"].Inputs["seed"] = 1
	if wf["3"].Inputs["seed"] == 1 {
		t.Error("Clone shares the inputs map")
	}
	if keys := mapKeys(wf["3"].Extra); !slices.Equal(keys, []string{"_meta", "is_changed"}) {
		t.Errorf("extra keys = %v", keys)
	}
}

func mapKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
