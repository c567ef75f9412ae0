package spec

import (
	"strings"
	"testing"
)

func TestSetCommitsKeepsLayout(t *testing.T) {
	const a, b = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	in := `{
  "schema_version": 2,
    "comfy": {"repo": "https://github.com/c/ComfyUI",   "ref": "master", "commit": "` + a + `"},
  "custom_nodes": [
    {"name": "x", "repo": "https://github.com/o/x", "ref": "main"},
    {
      "commit" :  "` + a + `",
      "repo": "https://github.com/o/y", "ref": "main", "meta": {"commit": "` + a + `"}
    }
  ],
  "models": [{"source": "https://h/m.bin", "target_path": "$MODELS_DIR/loras/m.bin", "commit": "x"}]
}
`
	for _, tc := range []struct {
		name    string
		commits map[string]string
		want    string
		changed []string
	}{
		{"core and second node", map[string]string{"comfy": b, "custom_nodes[1]": b},
			strings.NewReplacer(`"master", "commit": "`+a, `"master", "commit": "`+b, `"commit" :  "`+a+`"`, `"commit" :  "`+b+`"`).Replace(in),
			[]string{"comfy", "custom_nodes[1]"}},
		{"an entry without commit is left alone", map[string]string{"custom_nodes[0]": b}, in, nil},
		{"same commit: nothing to do", map[string]string{"comfy": a}, in, nil},
		{"nested keys of the same name are not entries", map[string]string{"custom_nodes[1].meta": b}, strings.Replace(in, `"meta": {"commit": "`+a+`"}`, `"meta": {"commit": "`+b+`"}`, 1), []string{"custom_nodes[1].meta"}},
	} {
		out, changed, err := SetCommits([]byte(in), tc.commits)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(out) != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, out, tc.want)
		}
		if strings.Join(changed, ",") != strings.Join(tc.changed, ",") {
			t.Errorf("%s: changed %v, want %v", tc.name, changed, tc.changed)
		}
	}
	if _, _, err := SetCommits([]byte(`{"comfy": {"commit": `), map[string]string{"comfy": b}); err == nil {
		t.Error("a truncated file was rewritten")
	}
}
