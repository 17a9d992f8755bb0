package internal_test

import (
	"go/build"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/shopgateway/shop/"

// allowed lists, for every package of the gateway, the project packages its
// production code may import (test files are free). A package missing here
// fails the test, so a new package comes with its rule. The layering, from
// the leaves up:
//   - protofields, reqinfo, outbox, logbuf, telemetry, apierr, ratelimit,
//     connlimit, devkeys: leaves, no project imports; upstream only apierr
//     (the services' errors become its errors); apidocs only the generated
//     OpenAPI and AsyncAPI documents. Every package that answers errors makes them with
//     apierr.
//   - httprule: descriptor and path-template helpers, on protofields only.
//   - metrics, forward, events, relay, live, server, auth: one job each, sideways
//     imports between them are not allowed.
//   - drift: the services' OpenAPI against forward's plans, fetched over
//     upstream; above forward, below app.
//   - app: the wiring, may import every package.
//   - cmd/gateway, cmd/gwbench: flags and env (defaults read from the
//     packages that apply them), then app; cmd/devtoken: devkeys; cmd/openapigen
//     reads the descriptors, event specs and header rules to write the
//     OpenAPI document, cmd/asyncapigen the event specs and headers, and the
//     Watch streams (live's kinds, their routes and public policy), to write
//     the AsyncAPI one; cmd/contractcheck runs drift on the routing of app
//     and forward.
var allowed = map[string][]string{
	"gateway/internal/protofields": nil,
	"gateway/internal/reqinfo":     nil,
	"gateway/internal/upstream":    {"gateway/internal/apierr"},
	"gateway/internal/outbox":      nil,
	"gateway/internal/logbuf":      nil,
	"gateway/internal/telemetry":   nil,
	"gateway/internal/apierr":      nil,
	"gateway/internal/ratelimit":   nil,
	"gateway/internal/connlimit":   nil,
	"gateway/internal/svcid":       nil,
	"gateway/devkeys":              nil,
	"gateway/internal/contract":    {"gateway/internal/apierr"},
	"gateway/internal/apidocs":     {"gen/..."},
	"gateway/internal/httprule":    {"gateway/internal/protofields"},
	"gateway/internal/metrics":     {"gateway/internal/reqinfo"},
	"gateway/internal/forward":     {"gateway/internal/apierr", "gateway/internal/httprule", "gateway/internal/protofields", "gateway/internal/reqinfo", "gateway/internal/svcid", "gateway/internal/upstream"},
	"gateway/internal/events":      {"gateway/internal/apierr", "gateway/internal/httprule", "gateway/internal/outbox", "gateway/internal/protofields", "gateway/internal/reqinfo", "gen/..."},
	"gateway/internal/relay":       {"gateway/internal/outbox"},
	"gateway/internal/live":        {"gateway/internal/apierr", "gateway/internal/reqinfo", "gen/..."},
	"gateway/internal/auth":        {"gateway/internal/apierr", "gateway/internal/httprule", "gateway/internal/ratelimit", "gateway/internal/reqinfo", "gen/..."},
	"gateway/internal/server":      {"gateway/internal/apierr", "gateway/internal/connlimit", "gateway/internal/contract", "gateway/internal/httprule", "gateway/internal/jsonbody", "gateway/internal/protofields", "gateway/internal/ratelimit", "gateway/internal/reqinfo"},
	"gateway/internal/jsonbody":    {"gateway/internal/apierr", "gateway/internal/contract"},
	"gateway/internal/drift":       {"gateway/internal/forward", "gateway/internal/upstream"},
	"gateway/internal/app":         {"gateway/internal/...", "gen/..."},
	"gateway/cmd/gateway":          {"gateway/internal/app", "gateway/internal/auth", "gateway/internal/connlimit", "gateway/internal/events", "gateway/internal/forward", "gateway/internal/live", "gateway/internal/logbuf", "gateway/internal/outbox", "gateway/internal/ratelimit", "gateway/internal/server", "gateway/internal/svcid", "gateway/internal/telemetry", "gateway/internal/upstream"},
	"gateway/cmd/devtoken":         {"gateway/devkeys", "gateway/internal/svcid"},
	"gateway/cmd/asyncapigen":      {"gateway/internal/auth", "gateway/internal/events", "gateway/internal/httprule", "gateway/internal/live", "gateway/internal/reqinfo", "gen/..."},
	"gateway/cmd/contractcheck":    {"gateway/internal/app", "gateway/internal/drift", "gateway/internal/forward"},
	"gateway/cmd/openapigen":       {"gateway/internal/events", "gateway/internal/httprule", "gateway/internal/protofields", "gateway/internal/reqinfo", "gen/..."},
	"gateway/cmd/gwbench":          {"gateway/devkeys", "gateway/internal/...", "gen/..."},
}

// imports returns the imports of the production files of every package
// under the gateway directory, keyed by path relative to the module; the
// project's own imports are relative to the module too.
func imports(tb testing.TB) map[string][]string {
	tb.Helper()
	root, err := filepath.Abs("..") // the gateway directory
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "testdata" {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if _, ok := err.(*build.NoGoError); ok {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pkg.GoFiles) == 0 { // tests only, like this one
			return nil
		}
		rel, err := filepath.Rel(filepath.Dir(root), path)
		if err != nil {
			return err
		}
		var imps []string
		for _, imp := range pkg.Imports {
			imps = append(imps, strings.TrimPrefix(imp, module))
		}
		out[filepath.ToSlash(rel)] = imps
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(out) < len(allowed) {
		tb.Fatalf("found %d packages under %s, want at least %d", len(out), root, len(allowed))
	}
	return out
}

// own reports whether an import from imports is one of the project's.
func own(imp string) bool {
	return strings.HasPrefix(imp, "gateway/") || strings.HasPrefix(imp, "gen/")
}

// deps returns every package reachable from the project package from
// through the graph: project packages and the external ones they import.
func deps(graph map[string][]string, from string) map[string]bool {
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, imp := range graph[p] {
			if !seen[imp] {
				seen[imp] = true
				stack = append(stack, imp)
			}
		}
	}
	return seen
}

func permitted(rules []string, imp string) bool {
	for _, r := range rules {
		if prefix, ok := strings.CutSuffix(r, "..."); ok {
			if strings.HasPrefix(imp, prefix) {
				return true
			}
		} else if r == imp {
			return true
		}
	}
	return false
}

func TestPackagesImportOnlyWhatTheirLayerAllows(t *testing.T) {
	t.Parallel()
	got := imports(t)
	pkgs := make([]string, 0, len(got))
	for p := range got {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		t.Run(p, func(t *testing.T) {
			rules, ok := allowed[p]
			if !ok {
				t.Fatalf("package %s has no rule in allowed; add one", p)
			}
			for _, imp := range got[p] {
				if !own(imp) {
					continue
				}
				if !permitted(rules, imp) {
					t.Errorf("%s imports %s; allowed: %q", p, imp, rules)
				}
			}
		})
	}
}

// The edge (server) and the event emitter (events) get descriptor helpers
// from httprule; they must not reach the forwarder, not even through another
// package.
func TestServerAndEventsDoNotDependOnForward(t *testing.T) {
	t.Parallel()
	graph := imports(t)
	for _, from := range []string{"gateway/internal/server", "gateway/internal/events"} {
		seen := deps(graph, from)
		if seen["gateway/internal/forward"] {
			t.Errorf("%s depends on gateway/internal/forward", from)
		}
		if !seen["gateway/internal/httprule"] {
			t.Errorf("%s does not depend on gateway/internal/httprule: is the graph read at all? deps: %q", from, slices.Sorted(maps.Keys(seen)))
		}
	}
}
