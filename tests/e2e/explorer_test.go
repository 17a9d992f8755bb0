package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
// operation is rendered, authorizes with a bearer token, and uses the page
// as a person would: GET /stock (public: sent without the token) answers
// 200, and POST /cart/add's Execute (operations open ready to try out)
// sends the body that Swagger UI fills from the document's examples, with
// the token, and the item is in the cart. The stack is made to fit the examples: the product
// they name is in stock and the token is the user they name. Then it checks
// that the page loaded nothing from anywhere but the gateway, and keeps a
// screenshot in test-artifacts/explorer.png.
func TestExplorer(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{NoEvents: true})
	base, err := url.Parse(s.RESTURL())
	if err != nil {
		t.Fatal(err)
	}
	ex := addItemExamples(t, s)
	if status, _, body := s.Do(t, "POST", "/stock", fmt.Sprintf(
		`{"product_id":%q,"product_name":"Espresso beans","quantity":%d,"price_cents":1890}`, ex.productID, ex.quantity+10)); status != 200 {
		t.Fatalf("stocking the example's product %s: %d %v", ex.productID, status, body)
	}

	ctx := newChromium(t, base.Hostname())
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	var (
		mu         sync.Mutex
		requested  []string
		authorized []string // requests that carried the token
		anonymous  []string // requests to the API without a token
		problems   []string
	)
	// A real token, of the user the examples name: the gateway refuses a
	// bad one even on a public route, and another user's cart.
	token := s.Token(t, ex.userID, "")
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			requested = append(requested, e.Request.URL)
			switch e.Request.Headers["Authorization"] {
			case "Bearer " + token:
				authorized = append(authorized, e.Request.Method+" "+e.Request.URL)
			case nil:
				anonymous = append(anonymous, e.Request.Method+" "+e.Request.URL)
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

	const (
		listStock = "#operations-StockService-StockService_ListStock"
		addItem   = "#operations-CartService-CartService_AddCartItem"
		status    = " .live-responses-table tbody .response-col_status"
	)
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
		chromedp.WaitVisible(chromedp.CSS(listStock+status)),
		// POST /cart/add: the page opens operations ready to try out
		// (tryItOutEnabled), its body in an editable text area filled from
		// the examples; Execute sends it as it is.
		chromedp.Click(chromedp.CSS(addItem+` .opblock-summary-control`)),
		chromedp.WaitVisible(chromedp.CSS(addItem+` textarea.body-param__text`)),
		chromedp.WaitVisible(chromedp.CSS(addItem+` button.execute`)),
		chromedp.Click(chromedp.CSS(addItem+` button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(addItem+status)),
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
	listStatus, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(listStock+status)))
	if err != nil {
		t.Fatal(err)
	}
	addStatus, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(addItem+status)))
	if err != nil {
		t.Fatal(err)
	}
	sentBody, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('`+addItem+` textarea.body-param__text').value`))
	if err != nil {
		t.Fatal(err)
	}

	if got, want := operations, countBindings(t); got != want {
		t.Errorf("%d operations rendered, want %d (one per REST binding but the aliases left out)", got, want)
	}
	if got := strings.TrimSpace(listStatus); !strings.HasPrefix(got, "200") {
		t.Errorf("GET /stock from the explorer answered %q, want 200", got)
	}
	if got := strings.TrimSpace(addStatus); !strings.HasPrefix(got, "2") {
		t.Errorf("POST /cart/add of the explorer's own body %s answered %q, want 2xx", sentBody, got)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(sentBody), &body); err != nil {
		t.Errorf("the body the explorer filled in is not JSON: %q (%v)", sentBody, err)
	}
	if got, want := fmt.Sprint(body["product_id"]), ex.productID; got != want {
		t.Errorf("the explorer's body %s has product_id %s, want the example %s", sentBody, got, want)
	}
	if status, _, cart := s.Do(t, "GET", fmt.Sprintf("/cart?user_id=%d", ex.userID), ""); status != 200 || !strings.Contains(fmt.Sprint(cart["items"]), "product_id:"+ex.productID) {
		t.Errorf("GET /cart of user %d after the explorer's POST /cart/add: %d %v, want the example's product in it", ex.userID, status, cart)
	}

	mu.Lock()
	defer mu.Unlock()
	has := func(list []string, req string) bool {
		return slices.ContainsFunc(list, func(r string) bool { return strings.HasPrefix(r, req) })
	}
	// GET /stock is public (security: []): Swagger UI sends it without
	// the token; POST /cart/add is not, and carries it.
	if !has(anonymous, "GET "+s.RESTURL()+"/stock") {
		t.Errorf("no GET /stock without a token; requests without one: %v", anonymous)
	}
	if !has(authorized, "POST "+s.RESTURL()+"/cart/add") {
		t.Errorf("no POST /cart/add with Authorization: Bearer %s; requests with the token: %v", token, authorized)
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

// addItemExample is the request that the document's examples make of POST
// /cart/add.
type addItemExample struct {
	userID    int64
	productID string
	quantity  int64
}

// addItemExamples reads the examples of POST /cart/add's body from the
// served document.
func addItemExamples(tb testing.TB, s *harness.Stack) addItemExample {
	tb.Helper()
	status, _, doc := s.Do(tb, "GET", "/openapi.json", "")
	if status != 200 {
		tb.Fatalf("GET /openapi.json: %d", status)
	}
	var d struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Example any `json:"example"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	raw, _ := json.Marshal(doc)
	if err := json.Unmarshal(raw, &d); err != nil {
		tb.Fatal(err)
	}
	props := d.Components.Schemas["AddCartItemRequest"].Properties
	example := func(name string) string {
		v := props[name].Example
		if v == nil {
			tb.Fatalf("AddCartItemRequest.%s has no example", name)
		}
		return fmt.Sprint(v)
	}
	user, err := strconv.ParseInt(example("user_id"), 10, 64)
	if err != nil {
		tb.Fatalf("user_id example: %v", err)
	}
	qty, err := strconv.ParseInt(example("quantity"), 10, 64)
	if err != nil {
		tb.Fatalf("quantity example: %v", err)
	}
	return addItemExample{userID: user, productID: example("product_id"), quantity: qty}
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

// newChromium starts a headless Chromium for the test (stopped in its
// Cleanup) that reaches only bypassHost: every other host goes to a proxy
// that does not exist, so a page cannot fetch anything from outside.
func newChromium(tb testing.TB, bypassHost string) context.Context {
	tb.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		tb.Fatalf("%s not found (%v): install Debian's chromium (make chromium)", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 2400),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.ProxyServer("127.0.0.1:1"),
		chromedp.Flag("proxy-bypass-list", bypassHost),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tb.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(tb.Logf))
	tb.Cleanup(cancelCtx)
	return ctx
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
