package comfy

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
)

// TestCollectOutputsStaleCached: a file a cached node lists that a node
// which ran also lists belongs to the node that ran; the cached listing is
// stale, whichever node comes first.
func TestCollectOutputsStaleCached(t *testing.T) {
	raw := map[string]json.RawMessage{
		"2": json.RawMessage(`{"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]}`),
		"4": json.RawMessage(`{"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]}`),
		"5": json.RawMessage(`{"images": [{"filename": "other_00001_.png", "subfolder": "", "type": "output"}]}`),
	}
	for _, cachedNode := range []string{"2", "4"} {
		outs, stale, _ := collectOutputs(raw, map[string]bool{cachedNode: true, "5": true}, false)
		ran := map[string]string{"2": "4", "4": "2"}[cachedNode]
		if len(outs) != 2 || outs[0].NodeID != ran || outs[0].Cached || outs[1].NodeID != "5" {
			t.Errorf("cached %s: outputs %+v", cachedNode, outs)
		}
		if len(stale) != 1 || stale[0].NodeID != cachedNode || !stale[0].Cached {
			t.Errorf("cached %s: stale %+v", cachedNode, stale)
		}
	}
}

func TestCollectOutputs(t *testing.T) {
	raw := map[string]json.RawMessage{
		"9":  json.RawMessage(`{"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}, {"filename": "ComfyUI_00002_.png", "subfolder": "", "type": "output"}], "animated": [false]}`),
		"10": json.RawMessage(`{"gifs": [{"filename": "AnimateDiff_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4", "frame_rate": 8.0, "fullpath": "/x/AnimateDiff_00001.mp4"}]}`),
		"12": json.RawMessage(`{"audio": [{"filename": "a.flac", "subfolder": "audio", "type": "output"}], "text": ["hello"]}`),
		"13": json.RawMessage(`{"images": [{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"}]}`),
		"14": json.RawMessage(`{"3d": {"filename": "mesh.glb", "subfolder": "3d"}}`),
		"15": json.RawMessage(`{"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]}`),
		"16": json.RawMessage(`null`),
		"17": json.RawMessage(`{"video": [{"filename": "v.mp4", "subfolder": "", "type": "output", "id": "asset-1", "preview_id": "p"}]}`),
	}
	type key struct{ node, kind, name, sub, typ string }
	tests := []struct {
		name     string
		skipTemp bool
		want     []key
	}{
		{"all", false, []key{
			{"9", "images", "ComfyUI_00001_.png", "", "output"},
			{"9", "images", "ComfyUI_00002_.png", "", "output"},
			{"10", "gifs", "AnimateDiff_00001.mp4", "", "output"},
			{"12", "audio", "a.flac", "audio", "output"},
			{"13", "images", "ComfyUI_temp_abcde_00001_.png", "", "temp"},
			{"14", "3d", "mesh.glb", "3d", "output"},
			{"17", "video", "v.mp4", "", "output"},
		}},
		{"skip temp", true, []key{
			{"9", "images", "ComfyUI_00001_.png", "", "output"},
			{"9", "images", "ComfyUI_00002_.png", "", "output"},
			{"10", "gifs", "AnimateDiff_00001.mp4", "", "output"},
			{"12", "audio", "a.flac", "audio", "output"},
			{"14", "3d", "mesh.glb", "3d", "output"},
			{"17", "video", "v.mp4", "", "output"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, stale, _ := collectOutputs(raw, map[string]bool{"10": true}, tt.skipTemp)
			if len(stale) != 0 {
				t.Errorf("stale = %+v", stale)
			}
			var got []key
			for _, o := range outs {
				got = append(got, key{o.NodeID, o.Kind, o.Filename, o.Subfolder, o.Type})
				if o.Cached != (o.NodeID == "10") {
					t.Errorf("output of node %s cached = %v", o.NodeID, o.Cached)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLocalPath(t *testing.T) {
	dir := "/dest"
	used := map[string]bool{}
	tests := []struct {
		o       Output
		want    string
		wantErr bool
	}{
		{Output{Filename: "a.png"}, "a.png", false},
		{Output{Filename: "a.png", Type: "temp"}, "a_1.png", false},
		{Output{Filename: "a.png", Subfolder: "x/y"}, "x/y/a.png", false},
		{Output{Filename: "b.png", Subfolder: "/abs"}, "abs/b.png", false},
		{Output{Filename: "../b.png"}, "", true},
		{Output{Filename: "b.png", Subfolder: "../up"}, "", true},
		{Output{Filename: ".."}, "", true},
	}
	for _, tt := range tests {
		got, err := localPath(dir, tt.o, used)
		if (err != nil) != tt.wantErr {
			t.Errorf("%+v: err = %v", tt.o, err)
			continue
		}
		if err == nil && got != filepath.Join(dir, tt.want) {
			t.Errorf("%+v: path = %s, want %s", tt.o, got, tt.want)
		}
	}
}

func TestCollectTexts(t *testing.T) {
	raw := map[string]json.RawMessage{
		"12": json.RawMessage(`{"audio": [{"filename": "a.flac", "subfolder": "audio", "type": "output"}], "text": ["hello", "world"]}`),
		"3":  json.RawMessage(`{"string": "a caption", "animated": [false], "count": [3]}`),
		"9":  json.RawMessage(`{"images": [{"filename": "x.png", "subfolder": "", "type": "output"}]}`),
		"16": json.RawMessage(`null`),
	}
	_, _, got := collectOutputs(raw, nil, false)
	want := []TextOutput{{"3", "string", "a caption"}, {"12", "text", "hello"}, {"12", "text", "world"}}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
