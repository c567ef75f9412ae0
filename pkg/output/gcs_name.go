package output

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// maxObjectName is GCS's limit on an object name, in bytes.
const maxObjectName = 1024

var bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)

// normalizeBucket accepts "name", "gs://name" and "gs://name/" and checks
// the name against GCS's rules, so a typo fails before any upload.
func normalizeBucket(b string) (string, error) {
	b = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b), "gs://"), "/")
	if strings.Contains(b, "/") {
		return "", fmt.Errorf("GCS bucket %q contains a path: give the bucket name alone and put the path in gcs_prefix / GCS_PREFIX", b)
	}
	if !bucketRe.MatchString(b) || strings.Contains(b, "..") || (len(b) > 63 && !strings.Contains(b, ".")) {
		return "", fmt.Errorf("invalid GCS bucket name %q: use 3-63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit", b)
	}
	return b, nil
}

// objectNames gives each file a unique object name:
// <prefix>/<job id>/[<subfolder>/]<node id>_<file name>. Every part is
// sanitized; names repeated within the job get a -2, -3, ... suffix.
func objectNames(prefix, jobID string, files []Local) []string {
	if prefix == "" {
		prefix = DefaultGCSPrefix
	}
	var parts []string
	for _, s := range strings.Split(prefix, "/") {
		if s != "" {
			parts = append(parts, sanitizeSegment(s))
		}
	}
	job := sanitizeSegment(jobID)
	if strings.TrimSpace(jobID) == "" {
		// The job id is what keeps two jobs' outputs apart; never share a
		// folder between jobs that lack one.
		job = "job-" + uuid.NewString()
	}
	parts = append(parts, job)
	base := strings.Join(parts, "/")

	used := make(map[string]bool, len(files))
	names := make([]string, len(files))
	for i, f := range files {
		dir := base
		for _, s := range strings.Split(strings.ReplaceAll(f.Subfolder, "\\", "/"), "/") {
			if s != "" {
				dir += "/" + sanitizeSegment(s)
			}
		}
		file := sanitizeSegment(path.Base(strings.ReplaceAll(f.Filename, "\\", "/")))
		if f.NodeID != "" {
			file = sanitizeSegment(f.NodeID) + "_" + file
		}
		name := fitName(dir, file, "")
		for n := 2; used[name]; n++ {
			name = fitName(dir, file, "-"+strconv.Itoa(n))
		}
		used[name] = true
		names[i] = name
	}
	return names
}

// fitName joins dir and file with suffix before the extension, shortening
// the file's stem when the whole would pass GCS's length limit.
func fitName(dir, file, suffix string) string {
	ext := path.Ext(file)
	if len(ext) > 16 {
		ext = ""
	}
	stem := strings.TrimSuffix(file, ext)
	room := maxObjectName - len(dir) - 1 - len(ext) - len(suffix)
	if room < 1 {
		room = 1
	}
	for len(stem) > room {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return dir + "/" + stem + suffix + ext
}

// sanitizeSegment keeps letters, digits, '.', '-' and '_' and turns every
// other run of characters into one '_', so names need no quoting in URLs,
// shells or gsutil and can never hold "..".
func sanitizeSegment(s string) string {
	var b strings.Builder
	under := false
	for _, r := range s {
		ok := r == '.' || r == '-' || r == '_' || (r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')) ||
			(r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)))
		if !ok {
			if !under {
				b.WriteByte('_')
			}
			under = true
			continue
		}
		under = r == '_'
		b.WriteRune(r)
	}
	out := b.String()
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", "_")
	}
	if out == "" || out == "." {
		out = "_"
	}
	return out
}
