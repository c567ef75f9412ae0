package spec

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
)

var nodeKeys = []string{"repo", "ref", "commit", "name", "target_dir", "install_requirements"}

var nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}$`)

func (d *decoder) nodes(top *object) ([]Node, error) {
	l, err := list(top, "custom_nodes")
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, 0, len(l))
	for i, e := range l {
		n, err := d.node(e, index("custom_nodes", i))
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, checkUniqueNodes(nodes, "custom_nodes")
}

func (d *decoder) node(v any, p string) (Node, error) {
	var n Node
	o, err := asObject(v, p, nodeKeys)
	if err != nil {
		return n, err
	}
	if n.Repo, err = d.repo(o, p); err != nil {
		return n, err
	}
	name, hasName, err := str(o, "name", p)
	if err != nil {
		return n, err
	}
	name = strings.TrimSpace(name)
	if !hasName || name == "" {
		name = RepoName(n.URL)
	}
	if !nodeNamePattern.MatchString(name) {
		return n, errf(join(p, "name"), "invalid node name %q: it becomes a folder under custom_nodes/, so use letters, digits, '.', '_', '+' or '-'", name)
	}
	n.Name, n.Dir = name, name
	dir, hasDir, err := str(o, "target_dir", p)
	if err != nil {
		return n, err
	}
	if hasDir {
		folder, ok := customNodeDir(dir)
		if !ok {
			return n, errf(join(p, "target_dir"), "%q: the legacy target_dir may only name a folder directly under $COMFY_HOME/custom_nodes/ (e.g. \"$COMFY_HOME/custom_nodes/%s\"); remove it to use the node name", dir, name)
		}
		n.Dir = folder
	}
	if v, ok := o.get("install_requirements"); ok && v != nil {
		b, err := boolish(v, join(p, "install_requirements"))
		if err != nil {
			return n, err
		}
		n.InstallRequirements = &b
	}
	return n, nil
}

func customNodeDir(dir string) (string, bool) {
	for _, prefix := range []string{"$COMFY_HOME/custom_nodes/", "${COMFY_HOME}/custom_nodes/"} {
		if rest, ok := strings.CutPrefix(strings.TrimSuffix(dir, "/"), prefix); ok && nodeNamePattern.MatchString(rest) {
			return rest, true
		}
	}
	return "", false
}

func checkUniqueNodes(nodes []Node, p string) error {
	names := map[string]int{}
	dirs := map[string]int{}
	for i, n := range nodes {
		if j, dup := names[n.Name]; dup {
			return errf(index(p, i), "duplicate node name %q (also %s): give one of them another \"name\"", n.Name, index(p, j))
		}
		if j, dup := dirs[n.Dir]; dup {
			return errf(index(p, i), "node %q would be installed in custom_nodes/%s, like %s", n.Name, n.Dir, index(p, j))
		}
		names[n.Name], dirs[n.Dir] = i, i
	}
	return nil
}

// RepoName is the last path segment of a git URL without ".git": the
// default node name.
func RepoName(u string) string {
	u = strings.TrimRight(u, "/")
	if i := strings.LastIndexAny(u, "/:"); i >= 0 {
		u = u[i+1:]
	}
	return strings.TrimSuffix(u, ".git")
}

var modelKeys = []string{"source", "name", "target_subdir", "target_path", "path", "checksum", "size"}

func (d *decoder) models(top *object) ([]Model, error) {
	l, err := list(top, "models")
	if err != nil {
		return nil, err
	}
	models := make([]Model, 0, len(l))
	for i, e := range l {
		m, err := d.model(e, index("models", i))
		if err != nil {
			return nil, err
		}
		models = append(models, m)
	}
	return d.mergeModels(models, "models")
}

func (d *decoder) model(v any, p string) (Model, error) {
	var m Model
	o, err := asObject(v, p, modelKeys)
	if err != nil {
		return m, err
	}
	src, _, err := str(o, "source", p)
	if err != nil {
		return m, err
	}
	src = strings.TrimSpace(src)
	if src == "" {
		return m, errf(join(p, "source"), "required: where to download the model from (hf://org/repo/file, https://…, civitai://models/<id>, gs://bucket/object or file:///path)")
	}
	if err := d.checkSource(src, join(p, "source")); err != nil {
		return m, err
	}
	m.Sources = []string{src}
	if m.Name, _, err = str(o, "name", p); err != nil {
		return m, err
	}
	if m.TargetSubdir, _, err = str(o, "target_subdir", p); err != nil {
		return m, err
	}
	tp, hasTP, err := str(o, "target_path", p)
	if err != nil {
		return m, err
	}
	alias, hasAlias, err := str(o, "path", p)
	if err != nil {
		return m, err
	}
	if hasAlias && hasTP && alias != tp {
		return m, errf(join(p, "path"), "%q disagrees with target_path %q: keep only target_path", alias, tp)
	}
	if !hasTP {
		tp = alias
	}
	m.TargetPath = tp
	if m.Name == "" {
		if tp != "" {
			m.Name = path.Base(tp)
		} else {
			m.Name = sourceBase(src)
		}
	}
	target := tp
	targetPath := join(p, "target_path")
	if target == "" {
		targetPath = join(p, "name")
		if m.TargetSubdir != "" {
			target = strings.TrimSuffix(m.TargetSubdir, "/") + "/" + m.Name
		} else {
			return m, errf(p, "no target_path or target_subdir: ComfyUI lists a model only in a folder of the models directory, by type; "+
				"add \"target_subdir\": \"checkpoints\" (or loras, vae, ...) or \"target_path\": \"$MODELS_DIR/checkpoints/%s\"", m.Name)
		}
	}
	if m.Target, err = ParseTarget(target); err != nil {
		return m, errf(targetPath, "%v", err)
	}
	if m.Target.Root == ModelsRoot && m.Target.Folder() == "" {
		return m, errf(targetPath, "%q is at the top of the models directory, where ComfyUI never lists it: "+
			"put it in the folder of its type, e.g. \"$MODELS_DIR/checkpoints/%s\" (or loras/, vae/, ...)", target, path.Base(m.Target.Rel))
	}
	if path.Ext(target) == "" {
		// ComfyUI lists only files with a model extension; a name taken
		// from a URL such as civitai's .../models/1996092 has none.
		d.warn(targetPath, "%q has no file extension, and ComfyUI lists only files with one (.safetensors, .ckpt, .pt, ...): give the model a name or target_path with its extension", target)
	}
	if cv, ok := o.get("checksum"); ok && cv != nil {
		cs, isStr := cv.(string)
		if !isStr {
			return m, errf(join(p, "checksum"), "want a string such as \"sha256:<64 hex digits>\", got %s", typeName(cv))
		}
		if m.SHA256, err = d.checksum(cs, join(p, "checksum")); err != nil {
			return m, err
		}
	}
	if sv, ok := o.get("size"); ok && sv != nil {
		n, isNum := sv.(json.Number)
		size, perr := strconv.ParseInt(string(n), 10, 64)
		if !isNum || perr != nil || size < 0 {
			return m, errf(join(p, "size"), "want a size in bytes (a non-negative integer), got %s", render(sv))
		}
		m.Size = size
	}
	return m, nil
}

var knownSchemes = []string{"hf", "huggingface", "civitai", "http", "https", "gs", "file"}

func (d *decoder) checkSource(src, p string) error {
	if strings.ContainsAny(src, " \t\n\r\x00") {
		return errf(p, "source %q contains whitespace", redactURL(src))
	}
	scheme, rest, hasScheme := strings.Cut(src, "://")
	if !hasScheme {
		return nil // a local path
	}
	if !contains(knownSchemes, strings.ToLower(scheme)) {
		return errf(p, "unsupported source scheme %q: use hf://, civitai://, https://, gs:// or file://", scheme+"://")
	}
	if rest == "" || strings.Trim(rest, "./…") == "" || strings.HasPrefix(rest, "<") {
		d.warn(p, "source %q looks like a documentation placeholder: realize will fail until it names a real file", redactURL(src))
		return nil
	}
	if s := strings.ToLower(scheme); s == "http" || s == "https" {
		if err := checkHostPort(src); err != nil {
			return errf(p, "source %q: %v", redactURL(src), err)
		}
	}
	return nil
}

var hexPattern = regexp.MustCompile(`^[0-9a-fA-F]+$`)

func (d *decoder) checksum(cs, p string) (string, error) {
	cs = strings.TrimSpace(cs)
	algo, hex, hasAlgo := strings.Cut(cs, ":")
	if !hasAlgo {
		algo, hex = "sha256", cs
	}
	if isPlaceholder(hex) {
		d.warn(p, "placeholder checksum %q ignored: the digest is recorded in the lock on first download", cs)
		return "", nil
	}
	switch strings.ToLower(algo) {
	case "sha256":
	case "md5", "sha1":
		return "", errf(p, "%s checksums are not supported: use \"sha256:<64 hex digits>\" (sha256sum prints it)", algo)
	default:
		return "", errf(p, "unknown checksum algorithm %q: use \"sha256:<64 hex digits>\"", algo)
	}
	if len(hex) != 64 || !hexPattern.MatchString(hex) {
		return "", errf(p, "malformed sha256 %q: want 64 hex digits", hex)
	}
	return strings.ToLower(hex), nil
}

// sourceBase is the file name a source URL points at, for a default name.
func sourceBase(src string) string {
	if u, err := url.Parse(src); err == nil && u.Path != "" {
		return path.Base(u.Path)
	}
	return path.Base(src)
}

// mergeModels folds entries with the same target into one model with
// alternative sources, as the original's users listed one file from both
// hf:// and https://. Conflicting checksums or sizes for one file are errors.
func (d *decoder) mergeModels(models []Model, p string) ([]Model, error) {
	seen := map[Target]int{}
	out := models[:0:0]
	for i, m := range models {
		j, dup := seen[m.Target]
		if !dup {
			seen[m.Target] = len(out)
			out = append(out, m)
			continue
		}
		first := &out[j]
		ip := index(p, i)
		if first.SHA256 != "" && m.SHA256 != "" && first.SHA256 != m.SHA256 {
			return nil, errf(ip, "target %s is listed twice with different checksums (%s and %s): one file cannot have both", m.Target, first.SHA256, m.SHA256)
		}
		if first.Size != 0 && m.Size != 0 && first.Size != m.Size {
			return nil, errf(ip, "target %s is listed twice with different sizes (%d and %d)", m.Target, first.Size, m.Size)
		}
		if first.SHA256 == "" {
			first.SHA256 = m.SHA256
		}
		if first.Size == 0 {
			first.Size = m.Size
		}
		if !contains(first.Sources, m.Source()) {
			first.Sources = append(first.Sources, m.Source())
		}
		d.warn(ip, "target %s is listed again (first as %q): its sources are tried in order", m.Target, first.Name)
	}
	return out, nil
}

// String is a short description for logs.
func (m Model) String() string { return fmt.Sprintf("%s -> %s", m.Name, m.Target) }
