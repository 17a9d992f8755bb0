package main

import (
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The pattern of an int64 written as a string matches exactly the decimal
// numbers within the field's bounds (leading zeros allowed), so that every
// string it allows is one the gateway accepts and every longer or larger
// number is outside it.
func TestInt64StringPattern(t *testing.T) {
	t.Parallel()
	i64 := func(v int64) *int64 { return &v }
	cases := []struct {
		name   string
		r      rules
		lo, hi uint64
	}{
		{"gte 0", rules{intMin: i64(0)}, 0, math.MaxInt64},
		{"gt 0", rules{intMin: i64(0), exclMin: true}, 1, math.MaxInt64},
		{"gt 0 lte 1000", rules{intMin: i64(0), exclMin: true, intMax: i64(1000)}, 1, 1000},
		{"gte 0 lt 7", rules{intMin: i64(0), intMax: i64(7), exclMax: true}, 0, 6},
		{"gte 1 lte 1", rules{intMin: i64(1), intMax: i64(1)}, 1, 1},
		{"gte 0 lte 9", rules{intMin: i64(0), intMax: i64(9)}, 0, 9},
		{"gte 0 lte 10", rules{intMin: i64(0), intMax: i64(10)}, 0, 10},
		{"gt 0 lte 2000200", rules{intMin: i64(0), exclMin: true, intMax: i64(2000200)}, 1, 2000200},
	}
	for _, tc := range cases {
		for _, form := range []numberForm{inJSON, inURL} {
			t.Run(tc.name+map[numberForm]string{inJSON: " in JSON", inURL: " in a URL"}[form], func(t *testing.T) {
				t.Parallel()
				int64PatternCase(t, tc.r, tc.lo, tc.hi, form)
			})
		}
	}
}

// int64PatternCase checks the pattern of rules r in form against numbers
// around the bounds and at random.
func int64PatternCase(t *testing.T, r rules, lo, hi uint64, form numberForm) {
	t.Helper()
	s := openapi3.NewStringSchema()
	s.Format = "int64"
	p := int64StringPattern(s, r, form)
	re, err := regexp.Compile(p)
	if err != nil {
		t.Fatalf("pattern %q: %v", p, err)
	}
	in := func(n *big.Int) bool {
		return n.Sign() >= 0 && n.Cmp(new(big.Int).SetUint64(lo)) >= 0 && n.Cmp(new(big.Int).SetUint64(hi)) <= 0
	}
	check := func(text string, want bool) {
		t.Helper()
		if got := re.MatchString(text); got != want {
			t.Errorf("pattern %q matches %q: %v, want %v", p, text, got, want)
		}
	}
	var values []*big.Int
	for _, v := range []uint64{0, 1, 2, 9, 10, 11, 99, 100, lo, hi, hi + 1, hi * 10, math.MaxInt64, math.MaxUint64} {
		values = append(values, new(big.Int).SetUint64(v))
		if v > 0 {
			values = append(values, new(big.Int).SetUint64(v-1))
		}
	}
	values = append(values, new(big.Int).Add(new(big.Int).SetUint64(math.MaxUint64), big.NewInt(1)))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		// Numbers of every length up to 20 digits, and near hi.
		digits := 1 + rng.IntN(20)
		n, _ := new(big.Int).SetString(strconv.FormatUint(rng.Uint64(), 10)+"0000", 10)
		n.Mod(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil))
		values = append(values, n, new(big.Int).SetUint64(hi-rng.Uint64N(min(hi+1, 1000))))
	}
	for _, n := range values {
		check(n.String(), in(n))
		// Only strconv, which reads parameters, takes leading zeros
		// and a plus sign; JSON's number syntax does not.
		check("000"+n.String(), form == inURL && in(n))
		check("+"+n.String(), form == inURL && in(n))
	}
	check("-0", lo == 0)
	for _, bad := range []string{"", "-1", "+", " 1", "1 ", "1.5", "0x10", "١", "1_0"} {
		check(bad, false)
	}
	if !strings.HasPrefix(p, "^") || !strings.HasSuffix(p, "$") {
		t.Errorf("pattern %q is not anchored", p)
	}
}

// A field that is not an int64 string, or whose lower bound is not 0 or 1,
// gets no pattern from its bounds.
func TestInt64StringPatternNone(t *testing.T) {
	t.Parallel()
	i64 := func(v int64) *int64 { return &v }
	str := openapi3.NewStringSchema()
	str.Format = "int64"
	cases := []struct {
		name string
		s    *openapi3.Schema
		r    rules
	}{
		{"int32 number", openapi3.NewInt32Schema(), rules{intMin: i64(0)}},
		{"no lower bound", str, rules{intMax: i64(5)}},
		{"lower bound 5", str, rules{intMin: i64(5)}},
		{"negative lower bound", str, rules{intMin: i64(-1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := int64StringPattern(tc.s, tc.r, inJSON); got != "" {
				t.Errorf("pattern %q, want none", got)
			}
		})
	}
}
