package events_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// Sizes of TestNoFalseAnswersWhileTheCopyLags.
const (
	lagUsers    = 24
	lagOutage   = 20 * time.Second
	lagProducts = 40
)

// shopper is one user of TestNoFalseAnswersWhileTheCopyLags: the cart lines
// that exist (added and neither removed nor paid, as the answers said), by
// product (each line has a product of its own).
type shopper struct {
	user int64
	live map[int64]int64 // product -> item id
	next int             // next product index to add
}

// lagTally counts the answers of the test.
type lagTally struct {
	mu                                sync.Mutex
	outcomes                          map[string]int
	falseNotFound, falseEmpty, others atomic.Int64
	notes                             []string
}

func (t *lagTally) add(what string, status int, code string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outcomes[fmt.Sprintf("%s %d %s", what, status, code)]++
}

func (t *lagTally) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.notes) < 20 {
		t.notes = append(t.notes, fmt.Sprintf(format, args...))
	}
}

// lagCall sends one REST request as the stack's admin and decodes the answer.
func lagCall(s *harness.Stack, token, method, path, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, s.RESTURL()+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", harness.Bearer(token))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		return resp.StatusCode, m, fmt.Errorf("%s %s: 503 without Retry-After", method, path)
	}
	return resp.StatusCode, m, nil
}

// reasonOf is the google.rpc.ErrorInfo reason of an error body, if any.
func reasonOf(m map[string]any) string {
	details, _ := m["details"].([]any)
	for _, d := range details {
		if dm, ok := d.(map[string]any); ok {
			if r, ok := dm["reason"].(string); ok {
				return r
			}
		}
	}
	return ""
}

// add adds a line of the next product to the cart.
func (sh *shopper) add(s *harness.Stack, token string, products []int64, tally *lagTally) error {
	if sh.next >= len(products) {
		return nil
	}
	p := products[sh.next]
	sh.next++
	st, m, err := lagCall(s, token, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, sh.user, p))
	if err != nil {
		return err
	}
	tally.add("add", st, "")
	if st == http.StatusOK {
		id, _ := m["item_id"].(string)
		var item int64
		fmt.Sscan(id, &item)
		sh.live[p] = item
	}
	return nil
}

// cycle is one round of a shopper during the outage: add a line, remove
// the oldest line that exists, and every third round pay the cart.
func (sh *shopper) cycle(s *harness.Stack, token string, products []int64, round int, tally *lagTally) error {
	if err := sh.add(s, token, products, tally); err != nil {
		return err
	}
	if len(sh.live) > 0 {
		// The oldest line: added before the broker stopped, or during.
		p := slices.Min(slices.Collect(maps.Keys(sh.live)))
		item := sh.live[p]
		st, m, err := lagCall(s, token, "DELETE", fmt.Sprintf("/cart/%d", item), "")
		if err != nil {
			return err
		}
		tally.add("delete", st, "")
		switch st {
		case http.StatusOK:
			delete(sh.live, p)
		case http.StatusServiceUnavailable:
		case http.StatusNotFound:
			tally.falseNotFound.Add(1)
			tally.note("user %d: DELETE /cart/%d answered 404 for a line that exists: %v", sh.user, item, m)
		default:
			tally.others.Add(1)
			tally.note("user %d: DELETE /cart/%d answered %d: %v", sh.user, item, st, m)
		}
	}
	if round%3 == 1 {
		st, m, err := lagCall(s, token, "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, sh.user))
		if err != nil {
			return err
		}
		reason := reasonOf(m)
		tally.add("pay", st, reason)
		switch {
		case st == http.StatusOK:
			items, _ := m["items"].([]any)
			for _, it := range items {
				line, _ := it.(map[string]any)
				var p int64
				fmt.Sscan(fmt.Sprint(line["product_id"]), &p)
				delete(sh.live, p)
			}
		case st == http.StatusServiceUnavailable:
		case st == http.StatusBadRequest && reason == "EMPTY_CART" && len(sh.live) > 0:
			tally.falseEmpty.Add(1)
			tally.note("user %d: pay answered EMPTY_CART with %d lines in the cart", sh.user, len(sh.live))
		case st == http.StatusBadRequest && reason == "EMPTY_CART":
		default:
			tally.others.Add(1)
			tally.note("user %d: pay answered %d: %v", sh.user, st, m)
		}
	}
	return nil
}

// TestNoFalseAnswersWhileTheCopyLags stops the broker for 20 s while users
// add, remove and pay: service B's copy of the carts stops following A's
// master. No delete may answer 404 and no payment EMPTY_CART for lines that
// exist; each is done or told to retry (503 with Retry-After). After the
// broker returns, every cart converges: B's copy and A's master both hold
// exactly the lines that exist.
func TestNoFalseAnswersWhileTheCopyLags(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	token := s.AdminToken(t)
	base := time.Now().UnixNano() % 1_000_000_000 * 1000
	products := createProductsWithStock(t, s, base, lagProducts)
	shoppers := make([]*shopper, lagUsers)
	tally := &lagTally{outcomes: map[string]int{}}
	// Two lines each that B's copy has before the outage.
	for i := range shoppers {
		sh := &shopper{user: base + 500_000 + int64(i), live: map[int64]int64{}}
		shoppers[i] = sh
		for range 2 {
			if err := sh.add(s, token, products, tally); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, sh := range shoppers {
		waitCartInB(t, s, sh.user, sh.live[slices.Max(slices.Collect(maps.Keys(sh.live)))])
	}

	s.StopKafka()
	down := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(shoppers))
	for _, sh := range shoppers {
		wg.Go(func() {
			for round := 1; time.Since(down) < lagOutage; round++ {
				if err := sh.cycle(s, token, products, round, tally); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	outage := time.Since(down).Round(time.Second)
	s.StartKafka()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	keys := slices.Sorted(maps.Keys(tally.outcomes))
	var summary []string
	for _, k := range keys {
		summary = append(summary, fmt.Sprintf("%s: %d", k, tally.outcomes[k]))
	}
	fmt.Printf("copy lag (requests for %v with the broker down, %d users): %s; false 404: %d, false EMPTY_CART: %d\n",
		outage, lagUsers, strings.Join(summary, ", "), tally.falseNotFound.Load(), tally.falseEmpty.Load())
	for _, n := range tally.notes {
		t.Log(n)
	}
	if n := tally.falseNotFound.Load() + tally.falseEmpty.Load() + tally.others.Load(); n > 0 {
		t.Errorf("%d false or unexpected answers while the copy lagged (false 404 %d, false EMPTY_CART %d, other %d)",
			n, tally.falseNotFound.Load(), tally.falseEmpty.Load(), tally.others.Load())
	}
	if tally.outcomes["delete 503 "] == 0 && tally.outcomes["pay 503 "] == 0 {
		t.Error("no delete or payment was told to retry: the copy did not lag, so the test proved nothing")
	}

	// Convergence: B's copy and A's master hold exactly the live lines.
	deadline := time.Now().Add(90 * time.Second)
	for _, sh := range shoppers {
		want := slices.Sorted(maps.Values(sh.live))
		for {
			gotB := cartItemIDs(t, s, token, fmt.Sprintf("/cart/%d", sh.user))
			gotA := cartItemIDs(t, s, token, fmt.Sprintf("/cart/fallback/%d", sh.user))
			if slices.Equal(gotB, want) && slices.Equal(gotA, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("user %d: after the broker returned, B's cart %v and A's master %v, want %v", sh.user, gotB, gotA, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// createProductsWithStock creates n products with plenty of stock.
func createProductsWithStock(tb testing.TB, s *harness.Stack, base int64, n int) []int64 {
	tb.Helper()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = base + int64(i)
		body := fmt.Sprintf(`{"product_id":%d,"product_name":"lag %d","quantity":100000,"price_cents":100}`, ids[i], i)
		if st, _, _ := s.Do(tb, "POST", "/stock", body); st != http.StatusOK {
			tb.Fatalf("create product %d: HTTP %d", ids[i], st)
		}
	}
	return ids
}

// cartItemIDs reads a cart through the gateway and returns its item ids, sorted.
func cartItemIDs(tb testing.TB, s *harness.Stack, token, path string) []int64 {
	tb.Helper()
	st, m, err := lagCall(s, token, "GET", path, "")
	if err != nil || st != http.StatusOK {
		tb.Fatalf("GET %s: %d %v %v", path, st, m, err)
	}
	items, _ := m["items"].([]any)
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		line, _ := it.(map[string]any)
		var id int64
		fmt.Sscan(fmt.Sprint(line["item_id"]), &id)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
