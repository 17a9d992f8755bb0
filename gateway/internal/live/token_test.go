package live

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	pos := position{0: 12, 2: 0, 1: 40}
	tok := encodeToken("shop.cart.v1", pos)
	if encodeToken("shop.cart.v1", position{1: 40, 2: 0, 0: 12}) != tok {
		t.Error("equal positions give different tokens")
	}
	got, err := decodeToken("shop.cart.v1", tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != 12 || got[1] != 40 || got[2] != 0 {
		t.Errorf("decoded %v, want %v", got, pos)
	}
	if strings.ContainsAny(tok, "\n\r:=+/") {
		t.Errorf("token %q is not URL- and SSE-safe", tok)
	}
}

func TestTokenRejects(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := encodeToken("shop.cart.v1", position{0: 1})
	for name, tok := range map[string]string{
		"empty":           "",
		"not base64":      "!!!",
		"padded base64":   base64.URLEncoding.EncodeToString([]byte(`{"v":1,"t":"shop.cart.v1","o":{"0":1}}`)),
		"other stream":    encodeToken("shop.order.v1", position{0: 1}),
		"not json":        enc("hello"),
		"unknown field":   enc(`{"v":1,"t":"shop.cart.v1","o":{"0":1},"x":1}`),
		"trailing data":   enc(`{"v":1,"t":"shop.cart.v1","o":{"0":1}}{}`),
		"wrong version":   enc(`{"v":2,"t":"shop.cart.v1","o":{"0":1}}`),
		"no offsets":      enc(`{"v":1,"t":"shop.cart.v1","o":{}}`),
		"negative offset": enc(`{"v":1,"t":"shop.cart.v1","o":{"0":-1}}`),
		"huge offset":     enc(`{"v":1,"t":"shop.cart.v1","o":{"0":9223372036854775807}}`),
		"bad partition":   enc(`{"v":1,"t":"shop.cart.v1","o":{"a":1}}`),
		"leading zero":    enc(`{"v":1,"t":"shop.cart.v1","o":{"01":1}}`),
		"neg partition":   enc(`{"v":1,"t":"shop.cart.v1","o":{"-1":1}}`),
		"big partition":   enc(`{"v":1,"t":"shop.cart.v1","o":{"99999999":1}}`),
		"float offset":    enc(`{"v":1,"t":"shop.cart.v1","o":{"0":1.5}}`),
		"too long":        good + strings.Repeat("A", MaxTokenLen),
	} {
		if _, err := decodeToken("shop.cart.v1", tok); err == nil {
			t.Errorf("%s: token %.60q accepted", name, tok)
		}
	}
	many := `{"v":1,"t":"shop.cart.v1","o":{`
	for i := range maxTokenParts + 1 {
		if i > 0 {
			many += ","
		}
		many += `"` + string(rune('0'+i%10)) + strings.Repeat("1", i/10) + `":1`
	}
	if _, err := decodeToken("shop.cart.v1", enc(many+"}}")); err == nil {
		t.Error("a token naming more partitions than allowed was accepted")
	}
}

func TestMerged(t *testing.T) {
	t.Parallel()
	got := merged(position{0: 5, 1: 2}, position{1: 7, 2: 1})
	if len(got) != 3 || got[0] != 5 || got[1] != 7 || got[2] != 1 {
		t.Errorf("merged = %v", got)
	}
}
