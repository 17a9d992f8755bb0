package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shopgateway/shop/tests/harness"
)

// chromiumPath is Debian's Chromium, which make chromium installs.
const chromiumPath = "/usr/bin/chromium"

// TestExplorer opens /docs/ in headless Chromium with every address but
// the loopback one unreachable (a proxy that refuses), checks that every
// operation is rendered, authorizes with a bearer token, sends GET /stock
// from the page and sees its 200; then it checks that the page loaded
// nothing from anywhere but the gateway, and keeps a screenshot in
// test-artifacts/explorer.png.
func TestExplorer(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("%s not found (%v): install Debian's chromium (make chromium)", chromiumPath, err)
	}
	s := harness.Start(t, harness.Options{NoEvents: true})
	base, err := url.Parse(s.RESTURL())
	if err != nil {
		t.Fatal(err)
	}

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 2400),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		// The network is cut off: every request goes to a proxy address
		// where nothing listens, except those to the gateway's host.
		chromedp.ProxyServer("127.0.0.1:1"),
		chromedp.Flag("proxy-bypass-list", base.Hostname()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	var (
		mu         sync.Mutex
		requested  []string
		authorized []string // URLs of requests that carried the token
		problems   []string
	)
	// A real token: the gateway refuses a bad one even on a public route.
	token := s.Token(t, newID(), "")
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			requested = append(requested, e.Request.URL)
			if e.Request.Headers["Authorization"] == "Bearer "+token {
				authorized = append(authorized, e.Request.Method+" "+e.Request.URL)
			}
		case *network.EventLoadingFailed:
			problems = append(problems, "loading failed: "+e.ErrorText+" "+string(e.BlockedReason))
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		}
	}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}

	const listStock = "#operations-StockService-StockService_ListStock"
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.RESTURL()+"/docs/"),
		chromedp.WaitVisible(chromedp.CSS(`.opblock`)),
		// Authorize: the padlock button, the bearer field of the dialog,
		// its Authorize button, then close the dialog.
		chromedp.Click(chromedp.CSS(`.scheme-container button.authorize`)),
		chromedp.WaitVisible(chromedp.CSS(`.modal-ux input`)),
		chromedp.SendKeys(chromedp.CSS(`.modal-ux input`), token),
		chromedp.Click(chromedp.CSS(`.modal-ux .auth-btn-wrapper button.authorize`)),
		chromedp.Click(chromedp.CSS(`.modal-ux button.btn-done`)),
		chromedp.WaitNotPresent(chromedp.CSS(`.modal-ux`)),
		// Send GET /stock from its operation's form.
		chromedp.Click(chromedp.CSS(listStock+` .opblock-summary-control`)),
		chromedp.WaitVisible(chromedp.CSS(listStock+` button.execute`)),
		chromedp.Click(chromedp.CSS(listStock+` button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(listStock+` .live-responses-table tbody .response-col_status`)),
	)
	if shot, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		keepArtifact(t, "explorer.png", shot)
	} else {
		t.Errorf("screenshot: %v", serr)
	}
	if err != nil {
		t.Fatalf("driving the explorer: %v", err)
	}
	operations, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('.opblock').length`))
	if err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(listStock+` .live-responses-table tbody .response-col_status`)))
	if err != nil {
		t.Fatal(err)
	}

	if got, want := operations, countBindings(t); got != want {
		t.Errorf("%d operations rendered, want %d (one per REST binding but the aliases left out)", got, want)
	}
	if got := strings.TrimSpace(status); !strings.HasPrefix(got, "200") {
		t.Errorf("GET /stock from the explorer answered %q, want 200", got)
	}
	mu.Lock()
	defer mu.Unlock()
	sent := false
	for _, r := range authorized {
		if strings.HasPrefix(r, "GET "+s.RESTURL()+"/stock") {
			sent = true
		}
	}
	if !sent {
		t.Errorf("no GET /stock with Authorization: Bearer %s; requests with the token: %v", token, authorized)
	}
	for _, u := range requested {
		if !strings.HasPrefix(u, s.RESTURL()+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the explorer requested %s, outside the gateway", u)
		}
	}
	for _, p := range problems {
		t.Errorf("in the page: %s", p)
	}
}

// countBindings is the number of REST bindings of the served RPCs, less the
// aliases the document leaves out (see shadowed).
func countBindings(tb testing.TB) int {
	n := 0
	for _, sd := range servedServices {
		for i := 0; i < sd.Methods().Len(); i++ {
			for j, b := range bindingsOf(tb, sd.Methods().Get(i)) {
				if j == 0 || !shadowed(tb, b) {
					n++
				}
			}
		}
	}
	return n
}

// keepArtifact writes a test artifact into test-artifacts/ at the
// repository root (ignored by git), or into $TEST_ARTIFACTS_DIR.
func keepArtifact(tb testing.TB, name string, data []byte) {
	tb.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(harness.RepoRoot(tb), "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Errorf("keeping %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Errorf("keeping %s: %v", name, err)
		return
	}
	tb.Logf("kept %s", p)
}
