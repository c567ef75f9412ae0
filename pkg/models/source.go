package models

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind says where a model comes from.
type Kind string

// The source kinds ParseSource understands.
const (
	KindHF      Kind = "hf"
	KindCivitai Kind = "civitai"
	KindHTTP    Kind = "http" // http:// and https://
	KindGCS     Kind = "gs"
	KindFile    Kind = "file" // file:// and local paths
)

// Source is a parsed, normalised model source. Two strings that name the
// same file in different spellings (hf://org/repo/f and
// hf://huggingface.co/org/repo/resolve/main/f) parse to equal Sources.
// Source is comparable with ==.
type Source struct {
	Kind Kind
	// Repo is "org/name" (hf).
	Repo string
	// RepoType is "" for model repos, "datasets" or "spaces" (hf).
	RepoType string
	// Revision is a branch, tag or commit; "main" by default (hf).
	Revision string
	// Path is the file inside the repo (hf), the object name (gs) or the
	// file-system path, absolute or relative (file).
	Path string
	// Bucket is the GCS bucket (gs).
	Bucket string
	// ModelID is the Civitai model version id and Query the download query,
	// encoded with sorted keys (civitai).
	ModelID string
	Query   string
	// URL is the normalised URL (http).
	URL string
}

// SourceError says why a source string cannot be used.
type SourceError struct {
	Source string // redacted
	Msg    string
	// Placeholder is set when the source is a documentation placeholder
	// such as "hf://..." that was never filled in.
	Placeholder bool
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("model source %q: %s", e.Source, e.Msg)
}

func srcErr(s, format string, args ...any) error {
	return &SourceError{Source: RedactString(s), Msg: fmt.Sprintf(format, args...)}
}

var (
	schemeRe      = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)
	knownSchemeRe = regexp.MustCompile(`(?i)^(hf|huggingface|civitai|gs|file|https?|s3|ftp):`)
	hfNameRe      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)
	civitaiIDRe   = regexp.MustCompile(`^[0-9]{1,19}$`)
	gcsBucketRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)
	placeholderRe = regexp.MustCompile(`(^|[/:?=])(\.\.\.|…)([/?&]|$)|<[^<>]*>`)
)

// ParseSource parses a model source string. Accepted forms:
//
//	hf://org/repo[@rev]/path            (also huggingface://)
//	hf://org/repo/resolve/<rev>/path    (and /blob/<rev>/, as pasted from the web)
//	hf://huggingface.co/org/repo/...    (either form above, also hf.co)
//	hf://datasets/org/repo/...          (dataset and space repos)
//	...?rev=<rev> or ?revision=<rev>
//	civitai://models/<id>[?query]       (?modelVersionId=<v> selects that version)
//	civitai://api/download/models/<id>[?query]
//	http://... and https://...
//	gs://bucket/object
//	file:///abs/path, /abs/path, relative/path
func ParseSource(s string) (Source, error) {
	if strings.TrimSpace(s) == "" {
		return Source{}, &SourceError{Msg: "empty source"}
	}
	if s != strings.TrimSpace(s) || strings.ContainsAny(s, "\x00\r\n\t") {
		return Source{}, srcErr(s, "has whitespace at its ends or control characters inside")
	}
	if placeholderRe.MatchString(s) {
		return Source{}, &SourceError{Source: RedactString(s), Placeholder: true,
			Msg: "is a documentation placeholder; replace it with a real source such as hf://org/repo/file.safetensors"}
	}
	src, err := parse(s)
	if err != nil {
		return Source{}, err
	}
	// Escapes can spell a placeholder or a control character that the raw
	// string did not show; judge the normal form too.
	c := src.Canonical()
	if placeholderRe.MatchString(c) {
		return Source{}, &SourceError{Source: RedactString(s), Placeholder: true,
			Msg: "is a documentation placeholder; replace it with a real source"}
	}
	if strings.IndexFunc(c+src.Path+src.Revision, isControl) >= 0 || c != strings.TrimSpace(c) {
		return Source{}, srcErr(s, "contains control characters or surrounding whitespace")
	}
	return src, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func parse(s string) (Source, error) {
	m := schemeRe.FindStringSubmatch(s)
	if m == nil {
		if knownSchemeRe.MatchString(s) {
			return Source{}, srcErr(s, "scheme must be followed by \"//\" (for example hf://org/repo/file)")
		}
		return parseLocal(s)
	}
	rest := s[len(m[0]):]
	switch strings.ToLower(m[1]) {
	case "hf", "huggingface":
		return parseHF(s, rest)
	case "civitai":
		return parseCivitai(s, rest)
	case "http", "https":
		return parseHTTP(s)
	case "gs":
		return parseGCS(s, rest)
	case "file":
		return parseFileURL(s, rest)
	default:
		return Source{}, srcErr(s, "unsupported scheme %q; use hf://, civitai://, https://, gs://, file:// or a local path", m[1])
	}
}

func parseHF(orig, rest string) (Source, error) {
	rawPath, rawQuery, _ := strings.Cut(rest, "?")
	segs := strings.Split(rawPath, "/")
	for i, seg := range segs {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return Source{}, srcErr(orig, "bad escape in path: %v", err)
		}
		segs[i] = dec
	}
	if len(segs) > 0 {
		switch strings.ToLower(segs[0]) {
		case "huggingface.co", "www.huggingface.co", "hf.co":
			segs = segs[1:]
		}
	}
	src := Source{Kind: KindHF}
	if len(segs) > 0 && (segs[0] == "datasets" || segs[0] == "spaces") {
		src.RepoType, segs = segs[0], segs[1:]
	}
	if len(segs) < 3 {
		return Source{}, srcErr(orig, "want hf://org/repo[@revision]/path/to/file")
	}
	org, name := segs[0], segs[1]
	var revs []string
	if n, rev, ok := strings.Cut(name, "@"); ok {
		name = n
		revs = append(revs, rev)
	}
	if !hfNameRe.MatchString(org) || !hfNameRe.MatchString(name) || strings.Contains(org+name, "..") {
		return Source{}, srcErr(orig, "bad repo id %q: want org/name of letters, digits, '.', '_' or '-'", org+"/"+name)
	}
	src.Repo = org + "/" + name
	file := segs[2:]
	if len(file) >= 3 && (file[0] == "resolve" || file[0] == "blob") {
		revs = append(revs, file[1])
		file = file[2:]
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Source{}, srcErr(orig, "bad query: %v", err)
	}
	for k, vs := range q {
		switch k {
		case "rev", "revision":
			revs = append(revs, vs...)
		case "download":
		default:
			return Source{}, srcErr(orig, "unknown query parameter %q (only rev or revision)", k)
		}
	}
	src.Revision = "main"
	for i, r := range revs {
		if r == "" || r == "." || r == ".." {
			return Source{}, srcErr(orig, "bad revision %q", r)
		}
		if i > 0 && r != revs[0] {
			return Source{}, srcErr(orig, "conflicting revisions %q and %q", revs[0], r)
		}
		src.Revision = r
	}
	// Split again: an escaped slash (%2F) inside a segment is a separator
	// in the download URL's path too.
	src.Path = strings.Join(file, "/")
	if err := checkRelPath(strings.Split(src.Path, "/")); err != nil {
		return Source{}, srcErr(orig, "%v", err)
	}
	return src, nil
}

// checkRelPath refuses empty, "." and ".." segments: they would make the
// download URL or the suggested file name point somewhere else.
func checkRelPath(segs []string) error {
	if len(segs) == 0 {
		return fmt.Errorf("missing file path")
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("bad file path %q: empty, '.' or '..' segment", strings.Join(segs, "/"))
		}
	}
	return nil
}

func parseCivitai(orig, rest string) (Source, error) {
	rawPath, rawQuery, _ := strings.Cut(rest, "?")
	// civitai:///api/... (three slashes) was the one spelling the original
	// tool accepted; keep it working.
	p := strings.TrimPrefix(rawPath, "/")
	p = strings.TrimPrefix(p, "civitai.com/")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Source{}, srcErr(orig, "bad query: %v", err)
	}
	var id string
	switch {
	case strings.HasPrefix(p, "api/download/models/"):
		id = strings.TrimPrefix(p, "api/download/models/")
	case strings.HasPrefix(p, "models/"):
		id = strings.TrimPrefix(p, "models/")
		// A pasted page URL names the model and selects a version with
		// modelVersionId; the download API wants the version.
		if v := q.Get("modelVersionId"); v != "" {
			id = v
			q.Del("modelVersionId")
		}
	default:
		return Source{}, srcErr(orig, "want civitai://models/<id> or civitai://api/download/models/<id>")
	}
	if !civitaiIDRe.MatchString(id) {
		return Source{}, srcErr(orig, "civitai model id %q is not a number", id)
	}
	return Source{Kind: KindCivitai, ModelID: id, Query: q.Encode()}, nil
}

func parseHTTP(orig string) (Source, error) {
	u, err := url.Parse(orig)
	if err != nil {
		return Source{}, srcErr(orig, "bad URL: %v", errorWithoutURL(err))
	}
	if u.Host == "" || u.Hostname() == "" {
		return Source{}, srcErr(orig, "URL has no host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return Source{}, srcErr(orig, "empty port after %q: remove the \":\" or write a port number", u.Hostname())
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Fragment, u.RawFragment = "", ""
	canon := u.String()
	// Accept only URLs whose printed form parses back to itself, so the
	// cache key is stable.
	if again, err := url.Parse(canon); err != nil || again.String() != canon {
		return Source{}, srcErr(orig, "URL does not have a stable normal form; escape its special characters")
	}
	return Source{Kind: KindHTTP, URL: canon}, nil
}

func parseGCS(orig, rest string) (Source, error) {
	bucket, object, ok := strings.Cut(rest, "/")
	if !ok || object == "" {
		return Source{}, srcErr(orig, "want gs://bucket/object")
	}
	if !gcsBucketRe.MatchString(bucket) {
		return Source{}, srcErr(orig, "bad bucket name %q", bucket)
	}
	if err := checkRelPath(strings.Split(object, "/")); err != nil {
		return Source{}, srcErr(orig, "%v", err)
	}
	return Source{Kind: KindGCS, Bucket: bucket, Path: object}, nil
}

func parseFileURL(orig, rest string) (Source, error) {
	host, p, _ := strings.Cut(rest, "/")
	if host != "" && !strings.EqualFold(host, "localhost") {
		return Source{}, srcErr(orig, "file URLs must be file:///absolute/path (host %q is not supported)", host)
	}
	p = "/" + p
	if p == "/" {
		return Source{}, srcErr(orig, "missing file path")
	}
	return Source{Kind: KindFile, Path: filepath.Clean(p)}, nil
}

func parseLocal(s string) (Source, error) {
	p := filepath.Clean(s)
	if p == "." || p == "/" {
		return Source{}, srcErr(s, "not a file path")
	}
	return Source{Kind: KindFile, Path: p}, nil
}

// String returns the canonical form.
func (s Source) String() string { return s.Canonical() }

// Canonical returns the one spelling of the source used as its cache key.
// It parses back to the same Source. It may hold a token a user wrote into
// a URL query; print Redacted() instead.
func (s Source) Canonical() string {
	switch s.Kind {
	case KindHF:
		var b strings.Builder
		b.WriteString("hf://")
		if s.RepoType != "" {
			b.WriteString(s.RepoType + "/")
		}
		b.WriteString(s.Repo + "@" + url.PathEscape(s.Revision) + "/" + escapeSegments(s.Path))
		return b.String()
	case KindCivitai:
		c := "civitai://api/download/models/" + s.ModelID
		if s.Query != "" {
			c += "?" + s.Query
		}
		return c
	case KindHTTP:
		return s.URL
	case KindGCS:
		return "gs://" + s.Bucket + "/" + s.Path
	case KindFile:
		if filepath.IsAbs(s.Path) {
			return "file://" + s.Path
		}
		// "./" keeps a relative path such as "hf:x" from reading as a
		// scheme when parsed again.
		if knownSchemeRe.MatchString(s.Path) || schemeRe.MatchString(s.Path) {
			return "./" + s.Path
		}
		return s.Path
	}
	return ""
}

// Redacted is Canonical with credentials (URL user info, token-like query
// parameters) replaced by "REDACTED": safe for logs, errors and files.
func (s Source) Redacted() string { return RedactString(s.Canonical()) }

// FileName suggests a file name for the model: the last path segment. It is
// "" for Civitai, whose file name only the download response reveals.
func (s Source) FileName() string {
	switch s.Kind {
	case KindHF, KindGCS:
		return path.Base(s.Path)
	case KindFile:
		return filepath.Base(s.Path)
	case KindHTTP:
		u, err := url.Parse(s.URL)
		if err != nil || u.Path == "" || strings.HasSuffix(u.Path, "/") {
			return ""
		}
		return path.Base(u.Path)
	}
	return ""
}

func escapeSegments(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// errorWithoutURL drops the URL that url.Parse errors repeat, since the
// URL may hold a token.
func errorWithoutURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
