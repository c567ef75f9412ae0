package models

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

func (st *Store) newHTTPClient() *http.Client {
	c := &http.Client{}
	if st.cfg.HTTPClient != nil {
		*c = *st.cfg.HTTPClient
	}
	if c.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Transparent gzip would make Content-Length and Range offsets
		// refer to compressed bytes.
		t.DisableCompression = true
		t.ReadBufferSize = 256 << 10
		c.Transport = t
	}
	c.CheckRedirect = checkRedirect
	// A total timeout would kill every big download; the idle timeout of
	// each attempt catches stalls instead.
	c.Timeout = 0
	return c
}

// checkRedirect keeps the token on a redirect only while the host stays the
// same. net/http would forward it to subdomains (huggingface.co ->
// cdn-lfs.huggingface.co), but CDN URLs are pre-signed and S3-style
// storage rejects a request carrying a second credential. The Referer
// would leak a ?token= query, so it is dropped too.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[len(via)-1].URL.Host || req.URL.Scheme != via[len(via)-1].URL.Scheme {
		req.Header.Del("Authorization")
	}
	req.Header.Del("Referer")
	return nil
}

// downloadURL is where an hf, civitai or http source is fetched from.
func (st *Store) downloadURL(src Source) (string, error) {
	switch src.Kind {
	case KindHF:
		prefix := ""
		if src.RepoType != "" {
			prefix = src.RepoType + "/"
		}
		return st.cfg.HFEndpoint + "/" + prefix + src.Repo + "/resolve/" + url.PathEscape(src.Revision) + "/" + escapeSegments(src.Path), nil
	case KindCivitai:
		u := st.cfg.CivitaiEndpoint + "/api/download/models/" + src.ModelID
		if src.Query != "" {
			u += "?" + src.Query
		}
		return u, nil
	case KindHTTP:
		return src.URL, nil
	}
	return "", fmt.Errorf("no download URL for %s sources", src.Kind)
}

func hostIs(host string, domains ...string) bool {
	for _, d := range domains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// atEndpoint reports whether u is under endpoint: the same host for an
// endpoint that is a bare host, the same URL prefix for one with a path
// (https://mirror/hf), so a host serving several services under prefixes
// gets each token only for its own.
func atEndpoint(u *url.URL, endpoint string) bool {
	e, err := url.Parse(endpoint)
	if err != nil || !strings.EqualFold(e.Host, u.Host) || !strings.EqualFold(e.Scheme, u.Scheme) {
		return false
	}
	prefix := strings.TrimSuffix(e.EscapedPath(), "/")
	return prefix == "" || strings.HasPrefix(u.EscapedPath(), prefix+"/")
}

// tokenFor picks the credential for the first request to u: the HF token
// for Hugging Face hosts and the HF endpoint, the Civitai token for
// Civitai and its endpoint, none elsewhere.
func (st *Store) tokenFor(u *url.URL) (token, service string) {
	name := strings.ToLower(u.Hostname())
	switch {
	case atEndpoint(u, st.cfg.HFEndpoint):
		return st.cfg.HFToken, "hf"
	case atEndpoint(u, st.cfg.CivitaiEndpoint):
		return st.cfg.CivitaiToken, "civitai"
	case hostIs(name, "huggingface.co", "hf.co"):
		return st.cfg.HFToken, "hf"
	case hostIs(name, "civitai.com"):
		return st.cfg.CivitaiToken, "civitai"
	}
	return "", ""
}

// newRequest builds the GET for src, asking for bytes from offset on when
// offset > 0. ifRange pins a resumed range to the same content.
func (st *Store) newRequest(ctx context.Context, src Source, offset int64, ifRange string) (*http.Request, error) {
	raw, err := st.downloadURL(src)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("build request for %s: %w", RedactString(raw), errorWithoutURL(err))
	}
	req.Header.Set("User-Agent", st.cfg.UserAgent)
	req.Header.Set("Accept-Encoding", "identity")
	if tok, _ := st.tokenFor(req.URL); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	return req, nil
}

type httpOrigin struct {
	st  *Store
	src Source
}

func (o *httpOrigin) describe() string { return o.src.Redacted() }

func (o *httpOrigin) open(ctx context.Context, offset int64, validator string) (*stream, error) {
	req, err := o.st.newRequest(ctx, o.src, offset, validator)
	if err != nil {
		return nil, permanent(err)
	}
	shown := RedactString(req.URL.String())
	resp, err := o.st.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token.
		return nil, o.st.red.error(fmt.Errorf("GET %s: %w", shown, errorWithoutURL(err)))
	}
	s := &stream{body: resp.Body, start: 0, total: resp.ContentLength, validator: validatorOf(resp)}
	switch {
	case resp.StatusCode == http.StatusOK:
		if isHTML(resp) {
			resp.Body.Close()
			return nil, permanent(fmt.Errorf("GET %s: got an HTML page instead of a model file; the source probably needs a login (set HF_TOKEN or CIVITAI_TOKEN) or is not a download link", shown))
		}
		return s, nil
	case resp.StatusCode == http.StatusPartialContent:
		start, end, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset || (resp.ContentLength >= 0 && end-start+1 != resp.ContentLength) {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", shown, offset, resp.Header.Get("Content-Range"))
		}
		s.start, s.total = start, total
		return s, nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		resp.Body.Close()
		if _, _, total, _ := parseContentRange(resp.Header.Get("Content-Range")); total == offset {
			// The partial file already holds every byte.
			return &stream{body: http.NoBody, start: offset, total: total, validator: validator}, nil
		}
		return o.open(ctx, 0, "")
	}
	resp.Body.Close()
	he := &HTTPError{URL: shown, StatusCode: resp.StatusCode, Status: resp.Status}
	switch c := resp.StatusCode; {
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return nil, he
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		he.Hint = o.authHint(req.URL)
	case c == http.StatusNotFound || c == http.StatusGone:
		he.Hint = o.notFoundHint(req.URL)
	}
	return nil, permanent(he)
}

func (o *httpOrigin) authHint(u *url.URL) string {
	tok, svc := o.st.tokenFor(u)
	switch {
	case svc == "hf" && tok == "":
		return "the repository is gated or private: set HF_TOKEN to a token that has access"
	case svc == "hf":
		return "HF_TOKEN has no access to this repository: accept its terms on huggingface.co or use another token"
	case svc == "civitai" && tok == "":
		return "this model needs a Civitai login: set CIVITAI_TOKEN"
	case svc == "civitai":
		return "CIVITAI_TOKEN was refused: check that it is valid"
	}
	return "access denied"
}

// notFoundHint says what to check for a 404, in the terms of the service
// that answered it: a Civitai user has no repository or revision.
func (o *httpOrigin) notFoundHint(u *url.URL) string {
	tok, svc := o.st.tokenFor(u)
	switch {
	case svc == "civitai":
		return "not found on Civitai: check the model version id (civitai://models/<model>?modelVersionId=<version>, or the number in civitai://api/download/models/<version>)"
	case svc == "hf" && tok == "":
		return "not found: check the repository, revision and path (a private Hugging Face repository also answers 404 without HF_TOKEN)"
	case svc == "hf":
		return "not found: check the repository, revision and path"
	}
	return "not found: check the URL"
}

func isHTML(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/html"
}

// validatorOf returns what If-Range may carry: a strong ETag, else
// Last-Modified.
func validatorOf(resp *http.Response) string {
	if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		return et
	}
	return resp.Header.Get("Last-Modified")
}

// parseContentRange reads "bytes a-b/total" or "bytes */total"; total is
// -1 when "*".
func parseContentRange(h string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, 0, 0, false
		}
		total = t
	}
	if rng == "*" {
		return -1, -1, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	s, err1 := strconv.ParseInt(a, 10, 64)
	e, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || s < 0 || e < s || (total >= 0 && e >= total) {
		return 0, 0, 0, false
	}
	return s, e, total, true
}
