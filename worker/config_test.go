package main

import "testing"

func TestConfigModelDirectIO(t *testing.T) {
	for _, tc := range []struct {
		val      string
		buffered bool
	}{{"", false}, {"1", false}, {"on", false}, {"0", true}, {"false", true}, {" Off ", true}, {"no", true}} {
		cfg, err := loadConfig(func(k string) string {
			if k == "COMFY_MODEL_DIRECT_IO" {
				return tc.val
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.BufferedModelWrites != tc.buffered {
			t.Errorf("COMFY_MODEL_DIRECT_IO=%q: buffered %v, want %v", tc.val, cfg.BufferedModelWrites, tc.buffered)
		}
	}
}
