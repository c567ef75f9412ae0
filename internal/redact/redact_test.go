package redact

import "testing"

func TestURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://example.org/m.bin", "https://example.org/m.bin"},
		{"https://user:pass@example.org/m.bin", "https://REDACTED@example.org/m.bin"},
		{"https://ghp_abc123@github.com/o/r", "https://REDACTED@github.com/o/r"},
		{"https://h/s4.bin?token=abc&x=1", "https://h/s4.bin?token=REDACTED&x=1"},
		{"https://h/a?X-Amz-Signature=f00&X-Amz-Credential=k&v=2", "https://h/a?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&v=2"},
		{"civitai://models/1?token=t0k", "civitai://models/1?token=REDACTED"},
		{"ssh://git@github.com/o/r", "ssh://git@github.com/o/r"},
		{"ssh://git:hunter2@github.com/o/r", "ssh://git:REDACTED@github.com/o/r"},
		{`GET "https://u:p@h/x?api_key=1": 404`, `GET "https://REDACTED@h/x?api_key=REDACTED": 404`},
		{"user@host:path", "user@host:path"},
	}
	for _, c := range cases {
		if got := URL(c.in); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
		if Has(c.in) != (c.in != c.want) {
			t.Errorf("Has(%q) = %v", c.in, Has(c.in))
		}
	}
}
