package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// readmeExample is one command of the README's first curl session, with
// the answer its comment promises.
type readmeExample struct {
	cmd     string
	status  int    // 200 unless the comment starts with another status
	body    string // a JSON prefix the body must start with ("{..." up to "...")
	header  string // a header line the answer must carry ("Name: value")
	comment string
}

var leadingStatus = regexp.MustCompile(`^(\d{3})\b`)

// readmeExamples reads the sh block of the README that starts with the
// TOKEN line: each command (continuation lines joined) and its comment.
func readmeExamples(t *testing.T) []readmeExample {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```sh\nTOKEN=$(make -s token SUB=7)")
	if !ok {
		t.Fatal("README: no sh block starting with TOKEN=$(make -s token SUB=7)")
	}
	block, _, _ = strings.Cut(block, "```")
	block = strings.ReplaceAll(block, "\\\n", " ")
	var out []readmeExample
	for _, line := range strings.Split(block, "\n")[1:] {
		if strings.TrimSpace(line) == "" {
			continue
		}
		cmd, comment, _ := strings.Cut(line, " # ")
		ex := readmeExample{cmd: strings.TrimSpace(cmd), status: http.StatusOK, comment: strings.TrimSpace(comment)}
		if m := leadingStatus.FindStringSubmatch(ex.comment); m != nil {
			ex.status, _ = strconv.Atoi(m[1])
		}
		if i := strings.Index(ex.comment, "{"); i >= 0 {
			ex.body, _, _ = strings.Cut(ex.comment[i:], "...")
		}
		if _, h, ok := strings.Cut(ex.comment, ", "); ok && strings.Contains(h, ": ") && !strings.Contains(h, "{") {
			ex.header = h
		}
		out = append(out, ex)
	}
	if len(out) < 8 {
		t.Fatalf("README: %d commands in the curl session, want at least 8", len(out))
	}
	return out
}

// TestREADMEExamples runs the README's curl session, word for word but for
// the address, against a real stack seeded as make run seeds it, and checks
// every answer its comments state: the status, the start of the body, a
// header. A README that drifts from the gateway fails here.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is needed to run the README's examples: %v", err)
	}
	s := harness.Start(t, harness.Options{})
	do(t, s, http.StatusOK, "POST", "/stock", `{"product_id":1,"product_name":"Espresso beans 1 kg","quantity":100,"price_cents":1890}`)
	host := strings.TrimPrefix(s.RESTURL(), "http://")
	for _, ex := range readmeExamples(t) {
		if !strings.HasPrefix(ex.cmd, "curl ") {
			t.Fatalf("README command %q is not a curl call", ex.cmd)
		}
		cmd := strings.Replace(ex.cmd, "localhost:8080", host, 1)
		cmd = curl + " -w '\\n%{http_code}' -sS" + strings.TrimPrefix(cmd, "curl")
		run := func() []byte {
			c := exec.Command("bash", "-c", cmd)
			c.Env = append(os.Environ(), "TOKEN="+s.Token(t, 7, ""))
			out, err := c.Output()
			if err != nil {
				t.Fatalf("%s: %v", ex.cmd, err)
			}
			return out
		}
		out := run()
		// "after the A→B sync": as a reader would, wait for the item added
		// just before to reach service B's copy (the next step pays for it).
		for deadline := time.Now().Add(15 * time.Second); strings.Contains(ex.comment, "after the A→B sync") &&
			!bytes.Contains(out, []byte(`"product_id"`)) && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			out = run()
		}
		i := bytes.LastIndexByte(out, '\n')
		status, _ := strconv.Atoi(string(out[i+1:]))
		answer := string(out[:i])
		body := answer
		if _, b, ok := strings.Cut(answer, "\r\n\r\n"); ok && strings.Contains(ex.cmd, " -si ") {
			body = b
		}
		what := fmt.Sprintf("%s  # %s", ex.cmd, ex.comment)
		if status != ex.status {
			t.Errorf("%s\n  status %d, want %d; answer %s", what, status, ex.status, answer)
		}
		var compact bytes.Buffer // protojson's spacing varies on purpose
		if json.Compact(&compact, []byte(body)) == nil {
			body = compact.String()
		}
		if ex.body != "" && !strings.HasPrefix(body, ex.body) {
			t.Errorf("%s\n  body %s\n  want it to start with %s", what, body, ex.body)
		}
		if ex.header != "" && !strings.Contains(strings.ToLower(answer), strings.ToLower(ex.header)) {
			t.Errorf("%s\n  no header %q in %s", what, ex.header, answer)
		}
	}
}
