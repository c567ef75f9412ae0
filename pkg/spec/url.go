package spec

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/runpod-comfy/worker/internal/redact"
)

// checkHostPort refuses network URLs whose host part cannot be dialled as
// written: no host, an empty port ("http://host:/x", which a client would
// silently send to the scheme's default port) or a port out of range.
func checkHostPort(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, which may hold a token.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("the URL has no host name")
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("empty port after %q: remove the \":\" or write a port number, e.g. %s:8080", u.Hostname(), u.Hostname())
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	return nil
}

// redactURL hides credentials written into a URL (user:password@, ?token=)
// before it appears in an error: the spec is the user's file, the error
// goes to logs.
func redactURL(s string) string { return redact.URL(s) }
