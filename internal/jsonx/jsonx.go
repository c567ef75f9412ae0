// Package jsonx encodes JSON the way the original Python tool and RunPod's
// SDK write it: like json.Marshal, but without escaping "<", ">" and "&",
// so URLs in results (signed GCS links) stay readable as json.dumps leaves
// them.
package jsonx

import (
	"bytes"
	"encoding/json"
)

// Marshal is json.Marshal without HTML escaping.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
