// Command contractcheck compares the services' own OpenAPI documents with
// the proto, RPC by RPC, as the gateway forwards them (package drift), and
// exits 1 when a service no longer accepts what the gateway sends or no
// longer declares what it reads. `make check-contract` runs it on the
// documents the services' FastAPI apps generate offline:
//
//	contractcheck -doc service_a=a.json -doc service_b=b.json
//
// Every upstream of the routing table needs a document.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/drift"
	"github.com/shopgateway/shop/gateway/internal/forward"
)

// docFlags collects -doc service=path.
type docFlags map[string]string

func (d docFlags) String() string { return fmt.Sprint(map[string]string(d)) }

func (d docFlags) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("%q: want service=path", v)
	}
	if _, dup := d[name]; dup {
		return fmt.Errorf("%s given twice", name)
	}
	d[name] = path
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "contractcheck:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("contractcheck", flag.ContinueOnError)
	docs := docFlags{}
	fs.Var(docs, "doc", "service=path of a service's OpenAPI document, once per service (service_a, service_b)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	plans, err := forward.Plans(app.Services(), forward.DefaultTable)
	if err != nil {
		return err
	}
	var upstreams []string
	for _, p := range plans {
		if !slices.Contains(upstreams, p.Upstream) {
			upstreams = append(upstreams, p.Upstream)
		}
	}
	slices.Sort(upstreams)
	var errs []error
	for name := range docs {
		if !slices.Contains(upstreams, name) {
			errs = append(errs, fmt.Errorf("-doc %s: no RPC is routed to it (want one of %s)", name, strings.Join(upstreams, ", ")))
		}
	}
	failed := 0
	for _, name := range upstreams {
		path, ok := docs[name]
		if !ok {
			errs = append(errs, fmt.Errorf("no -doc for %s", name))
			continue
		}
		doc, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		probs, err := drift.Check(plans, name, doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		for _, p := range probs {
			fmt.Fprintf(out, "%s: %s\n", name, p)
		}
		failed += len(probs)
		if len(probs) == 0 {
			fmt.Fprintf(out, "%s: its API matches the proto\n", name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d differences between the proto and the services' APIs", failed)
	}
	return nil
}
