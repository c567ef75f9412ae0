package endpoint

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name, doc string
		input     string
		webhook   string
		policy    Policy
		err       string
	}{
		{name: "test_input.json", doc: `{"input": {"version_id": "v", "seed": 18446744073709551615}}`, input: `{"version_id": "v", "seed": 18446744073709551615}`},
		{name: "bare input", doc: ` {"version_id": "v"} `, input: `{"version_id": "v"}`},
		{name: "webhook and policy", doc: `{"input": {"a": 1}, "webhook": "https://h/x", "policy": {"executionTimeout": 600000, "ttl": 3600000}}`,
			input: `{"a": 1}`, webhook: "https://h/x", policy: Policy{ExecutionTimeout: 10 * time.Minute, TTL: time.Hour}},
		{name: "low priority", doc: `{"input": {}, "policy": {"lowPriority": true}}`, input: `{}`, policy: Policy{LowPriority: true}},
		{name: "s3Config", doc: `{"input": {}, "s3Config": {"accessId": "a", "accessSecret": "TOPSECRET", "bucketName": "b", "endpointUrl": "https://s3"}}`, input: `{}`},
		{name: "unknown key", doc: `{"input": {}, "extra": 1}`, err: "(extra)"},
		{name: "unknown policy key", doc: `{"input": {}, "policy": {"priority": 1}}`, err: "executionTimeout and ttl"},
		{name: "unknown s3Config key", doc: `{"input": {}, "s3Config": {"accessSecret": "TOPSECRET", "region": "x"}}`, err: "accessId, accessSecret"},
		{name: "input not an object", doc: `{"input": "x"}`, err: `"input" must be a JSON object`},
		{name: "not an object", doc: `[{"input": {}}]`, err: "not a JSON object"},
		{name: "null", doc: `null`, err: "not a JSON object"},
		{name: "broken", doc: `{"input": `, err: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseRequest([]byte(tt.doc))
			if tt.err != "" {
				var ie *InputError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "TOPSECRET") {
					t.Fatalf("err = %v, want an InputError with %q (and no secret)", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(req.Input) != tt.input || req.Webhook != tt.webhook || req.Policy != tt.policy {
				t.Errorf("got %s %q %+v", req.Input, req.Webhook, req.Policy)
			}
		})
	}
}
