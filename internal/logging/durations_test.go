package logging

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDurationsCarryTheirUnit keeps JSON logs readable by machines: every
// duration a log line carries is whole milliseconds under a key ending in
// _ms. zerolog's Dur wrote a float whose unit the key did not say (and
// that a global setting could change), so no code of the module may call
// it; an Int64 field fed from Milliseconds() must say _ms.
func TestDurationsCarryTheirUnit(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch sel.Sel.Name {
			case "Dur", "Durs", "TimeDiff":
				if len(call.Args) == 2 {
					t.Errorf("%s: zerolog %s writes a float of unstated unit: use Int64(\"<key>_ms\", d.Milliseconds())", fset.Position(call.Pos()), sel.Sel.Name)
				}
			case "Int64":
				if len(call.Args) != 2 || !callsMilliseconds(call.Args[1]) {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok {
					key, _ := strconv.Unquote(lit.Value)
					if !strings.HasSuffix(key, "_ms") {
						t.Errorf("%s: milliseconds logged as %q: end the key in _ms", fset.Position(call.Pos()), key)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files under %s", checked, root)
	}
}

func callsMilliseconds(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	s, ok := c.Fun.(*ast.SelectorExpr)
	return ok && s.Sel.Name == "Milliseconds"
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
