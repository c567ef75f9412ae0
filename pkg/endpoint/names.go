package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes keeps names well under the usual 255-byte limit, with room
// for a "-NNN" suffix.
const maxNameBytes = 200

// safeName reduces a file name from a result to one path element that
// cannot leave the output directory, hide itself, or trouble a shell or
// another OS: the last element only (either slash), no control or reserved
// characters, no leading dots. "" when nothing usable is left.
func safeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsControl(r), r == utf8.RuneError:
			b.WriteByte('_')
		case strings.ContainsRune(`<>:"|?*`, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimLeft(b.String(), ". ")
	// Windows drops trailing dots and spaces; a name that differs only in
	// them would collide there.
	name = strings.TrimRight(name, ". ")
	if len(name) > maxNameBytes {
		ext := filepath.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		stem := name[:maxNameBytes-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	return name
}

// claim moves the finished temp file tmp into dir under name, or under
// "stem-1.ext", "stem-2.ext", ... when that is taken: an existing file is
// never replaced. os.Link fails if the target exists, which makes the check
// and the move one atomic step even with another writer in the directory.
func claim(tmp, dir, name string) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	if stem == "" {
		stem, ext = name, ""
	}
	for i := 0; i < 10000; i++ {
		cand := name
		if i > 0 {
			cand = fmt.Sprintf("%s-%d%s", stem, i, ext)
		}
		final := filepath.Join(dir, cand)
		err := os.Link(tmp, final)
		if err == nil {
			os.Remove(tmp)
			return final, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here (some network or FUSE file systems): check,
		// then rename. Not atomic against another writer, but this
		// directory is the caller's.
		if _, serr := os.Lstat(final); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
		if rerr := os.Rename(tmp, final); rerr != nil {
			return "", rerr
		}
		return final, nil
	}
	return "", fmt.Errorf("%s: too many files with this name in %s", name, dir)
}
