package internal_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// statusBuilders are the functions of google.golang.org/grpc/status that
// make a status; reading one (status.Code, status.FromError, status.Convert)
// is free.
var statusBuilders = map[string]bool{
	"New": true, "Newf": true, "Error": true, "Errorf": true, "FromProto": true, "ErrorProto": true,
}

// statusMakers lists, relative to the gateway directory, the production
// files allowed to build a gRPC status: apierr, where apierr.Error becomes
// one, and nothing else. Every other package answers with apierr.Error, so
// codes, messages and details are shaped in one place.
var statusMakers = map[string]bool{
	"internal/apierr/apierr.go": true,
	"internal/apierr/error.go":  true,
}

// TestStatusesBuiltOnlyInApierr fails when a production file of the gateway
// outside statusMakers calls a statusBuilders function.
func TestStatusesBuiltOnlyInApierr(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..") // the gateway directory
	if err != nil {
		t.Fatal(err)
	}
	found := statusCalls(t, root)
	scanned := 0
	for file, calls := range found {
		scanned++
		if statusMakers[file] {
			continue
		}
		for _, c := range calls {
			t.Errorf("%s builds a gRPC status; return an apierr.Error (apierr.New, apierr.Errorf, apierr.InvalidArgument) instead", c)
		}
	}
	if scanned < 20 {
		t.Fatalf("scanned %d files, want the whole gateway", scanned)
	}
}

// statusCalls returns, for every production Go file under root (relative
// path), the positions of its calls of a statusBuilders function.
func statusCalls(tb testing.TB, root string) map[string][]string {
	tb.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		out[rel] = nil
		name := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "google.golang.org/grpc/status" {
				name = "status"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && statusBuilders[sel.Sel.Name] {
				out[rel] = append(out[rel], fset.Position(sel.Pos()).String())
			}
			return true
		})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
