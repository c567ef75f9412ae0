package pyenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Plan is what one install resolves together.
type Plan struct {
	// CoreRequirements is ComfyUI's requirements.txt; "" for none.
	CoreRequirements string
	// Nodes are the custom nodes whose requirements are installed. The
	// caller leaves out nodes that opted out (install_requirements off)
	// and nodes without a requirements file.
	Nodes []NodeRequirements
	// Packages are the spec's python_packages, in spec order. Entries that
	// start with "-" are pip options for the one pip call; an option that
	// takes a value may carry it in the same entry ("--index-url=URL") or
	// in the next one.
	Packages []string
}

// NodeRequirements is one node's requirements file.
type NodeRequirements struct {
	Name string
	Path string
}

// Empty reports whether there is nothing to install.
func (p Plan) Empty() bool {
	return p.CoreRequirements == "" && len(p.Nodes) == 0 && len(p.Packages) == 0
}

// valueOptions are pip install options whose value is the next argument
// when not attached with "=".
var valueOptions = map[string]bool{
	"-r": true, "--requirement": true, "-c": true, "--constraint": true,
	"-e": true, "--editable": true, "-t": true, "--target": true,
	"--platform": true, "--python-version": true, "--implementation": true,
	"--abi": true, "--root": true, "--prefix": true, "--src": true,
	"--upgrade-strategy": true, "-C": true, "--config-settings": true,
	"--global-option": true, "--no-binary": true, "--only-binary": true,
	"--progress-bar": true, "--report": true, "-i": true, "--index-url": true,
	"--extra-index-url": true, "-f": true, "--find-links": true,
	"--trusted-host": true, "--cache-dir": true, "--log": true,
	"--proxy": true, "--retries": true, "--timeout": true,
	"--exists-action": true, "--cert": true, "--client-cert": true,
	"--use-feature": true, "--use-deprecated": true, "--python": true,
	"--keyring-provider": true, "--root-user-action": true,
}

// packageArg is one python_packages entry.
type packageArg struct {
	text string
	// pkg is set for requirements, as opposed to options and their values.
	pkg bool
}

func splitPackages(entries []string) []packageArg {
	out := make([]packageArg, 0, len(entries))
	wantValue := false
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		switch {
		case wantValue:
			out = append(out, packageArg{text: e})
			wantValue = false
		case strings.HasPrefix(e, "-"):
			out = append(out, packageArg{text: e})
			wantValue = valueOptions[e]
		default:
			out = append(out, packageArg{text: e, pkg: true})
		}
	}
	return out
}

// Options returns the python_packages entries that are pip options (with
// their values), in order.
func (p Plan) Options() []string {
	var out []string
	for _, a := range splitPackages(p.Packages) {
		if !a.pkg {
			out = append(out, a.text)
		}
	}
	return out
}

// Requirements returns the python_packages entries that are requirements.
func (p Plan) Requirements() []string {
	var out []string
	for _, a := range splitPackages(p.Packages) {
		if a.pkg {
			out = append(out, a.text)
		}
	}
	return out
}

// PlanDigest hashes everything that decides what an Install of plan into v
// puts in the venv: the content of every requirements file (and of the
// files they include), the packages and options, the node names, the
// interpreter's ABI tag, the venv's identity (a recreated venv is empty)
// and, with system site packages, the base versions that are kept. Where
// packages come from (index, wheels, offline, cache, pip or uv) is not
// part of it: the same request gives the same environment. Paths are not
// part of it either, so a moved build keeps its digest.
func (in *Installer) PlanDigest(plan Plan, v *Venv) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "pyenv-plan/1\nvenv %s\ntag %s\nsystem-site %v\n", v.ID, v.Interpreter.Tag, v.SystemSitePackages)
	for _, p := range v.BasePins {
		fmt.Fprintf(h, "keep %s\n", p)
	}
	if plan.CoreRequirements != "" {
		sum, err := hashReqFile(plan.CoreRequirements, 0)
		if err != nil {
			return "", fmt.Errorf("ComfyUI requirements: %w", err)
		}
		fmt.Fprintf(h, "core %s\n", sum)
	}
	for _, n := range plan.Nodes {
		sum, err := hashReqFile(n.Path, 0)
		if err != nil {
			return "", fmt.Errorf("node %s requirements: %w", n.Name, err)
		}
		fmt.Fprintf(h, "node %q %s\n", n.Name, sum)
	}
	for _, a := range splitPackages(plan.Packages) {
		fmt.Fprintf(h, "arg %v %q\n", a.pkg, a.text)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
