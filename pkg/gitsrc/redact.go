package gitsrc

import (
	"net/url"
	"strings"
)

const redacted = "***"

// RedactURL returns rawURL safe for logs and error messages. For http(s)
// the whole userinfo is replaced ("https://***@host/..."), because a token is
// often written as the user name; for other schemes only a password is
// (an ssh user name such as "git" is not a secret). Strings that are not
// URLs (scp-like syntax, paths) are returned unchanged.
func RedactURL(rawURL string) string {
	if !strings.Contains(rawURL, "://") {
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparsable: cut anything between the scheme and an '@' so a
		// malformed URL with a token still cannot leak it.
		scheme, rest, _ := strings.Cut(rawURL, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return scheme + "://" + redacted + rest[at:]
		}
		return rawURL
	}
	if u.User == nil {
		return rawURL
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		u.User = url.User(redacted)
	default:
		if _, has := u.User.Password(); !has {
			return rawURL
		}
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	// url.URL.String escapes "*"; write the marker back verbatim.
	return strings.Replace(u.String(), url.PathEscape(redacted), redacted, 1)
}

// secretsOf lists the strings RedactURL hides in rawURL, raw and escaped, so
// they can also be scrubbed from third-party error text that embeds the URL.
func secretsOf(rawURL string) []string {
	var user, pass, scheme string
	if u, err := url.Parse(rawURL); err == nil {
		if u.User == nil {
			return nil
		}
		scheme, user = strings.ToLower(u.Scheme), u.User.Username()
		pass, _ = u.User.Password()
	} else {
		// Parsers quote the raw URL in their errors: find the userinfo by
		// hand, as RedactURL does.
		sch, rest, ok := strings.Cut(rawURL, "://")
		if !ok {
			return nil
		}
		if slash := strings.Index(rest, "/"); slash >= 0 {
			rest = rest[:slash]
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			return nil
		}
		scheme = strings.ToLower(sch)
		user, pass, _ = strings.Cut(rest[:at], ":")
	}
	var out []string
	for _, s := range []string{pass, user} {
		if s == "" || (s == user && scheme != "http" && scheme != "https") {
			continue
		}
		out = append(out, s, url.PathEscape(s), url.QueryEscape(s), url.UserPassword("", s).String()[1:])
	}
	return out
}

// scrub removes every secret from s. Longer secrets go first so a secret that
// contains another is removed whole.
func scrub(s string, secrets []string) string {
	sorted := append([]string(nil), secrets...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && len(sorted[j]) > len(sorted[j-1]); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	for _, sec := range sorted {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// scrubbedError presents a cause with secrets removed from its text while
// keeping errors.Is / errors.As access to the cause (and any sentinels).
type scrubbedError struct {
	msg  string
	errs []error
}

func (e *scrubbedError) Error() string   { return e.msg }
func (e *scrubbedError) Unwrap() []error { return e.errs }

// redactErr wraps err so its message carries no secret of rawURL.
func redactErr(err error, rawURL string) error {
	sec := secretsOf(rawURL)
	if len(sec) == 0 {
		return err
	}
	return &scrubbedError{msg: scrub(err.Error(), sec), errs: []error{err}}
}
