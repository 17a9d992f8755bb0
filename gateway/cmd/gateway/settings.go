package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A setting is one configuration value of the gateway, declared once: its
// flag, its environment variable, its default, how it is parsed and
// checked (value), and its documentation, which is both the flag's usage
// and its row in the README's configuration table (TestREADMEConfigTable
// keeps the two equal).
type setting struct {
	name  string // the flag, without the dash
	env   string // the environment variable
	def   string // the default, written as on the command line
	note  string // said after the default in the README, e.g. "(256 MiB)"
	doc   string // Markdown: the README's meaning column
	value flag.Value
	// emptySet: an environment variable set to "" is a value (an empty
	// list: "off"), not the absence of one.
	emptySet bool
}

// settings is the gateway's configuration, in the README's order.
type settings []*setting

// add declares a setting whose value starts at def.
func (s *settings) add(st setting) {
	if err := st.value.Set(st.def); err != nil {
		panic(fmt.Sprintf("setting -%s: default %q: %v", st.name, st.def, err)) // a programming error, caught by the tests
	}
	*s = append(*s, &st)
}

// load applies the environment to every setting, then registers the
// settings on fs with those values as the flags' defaults, so -h shows
// what would run. A value that does not parse or is out of range is an
// error naming the variable: a typo must not leave the default in force.
func (s settings) load(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	for _, st := range s {
		v, ok := lookup(st.env)
		if ok && (v != "" || st.emptySet) {
			if err := st.value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", st.env, v, err))
			}
		}
		fs.Var(st.value, st.name, st.usage())
	}
	if len(errs) > 0 {
		return fmt.Errorf("environment: %w", errors.Join(errs...))
	}
	return nil
}

var mdLink = regexp.MustCompile(`\[([^\]]+)\]\([^)]*\)`)

// usage is the flag's help: the documentation without Markdown.
func (st *setting) usage() string {
	u := strings.ReplaceAll(mdLink.ReplaceAllString(st.doc, "$1"), "`", "")
	return fmt.Sprintf("%s (env %s)", u, st.env)
}

// readmeRow is the setting's row of the README's configuration table.
func (st *setting) readmeRow() string {
	def := "(none)"
	if st.def != "" {
		def = "`" + st.def + "`"
	}
	if st.note != "" {
		def += " " + st.note
	}
	return fmt.Sprintf("| `-%s` | `%s` | %s | %s |", st.name, st.env, def, st.doc)
}

// value is a flag.Value of type T parsed and checked by parse; it keeps
// the text it was given, so -h shows the default as declared.
type value[T any] struct {
	p     *T
	raw   string
	parse func(string) (T, error)
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p, v.raw = x, s
	return nil
}

func (v *value[T]) String() string {
	if v == nil {
		return ""
	}
	return v.raw
}

// boolValue is a value[bool] that may be given as a bare -flag.
type boolValue struct{ value[bool] }

func (*boolValue) IsBoolFlag() bool { return true }

// off is how a setting that can be turned off is turned off.
const off = "off"

func textValue(p *string) flag.Value {
	return &value[string]{p: p, parse: func(s string) (string, error) { return s, nil }}
}

// oneOfValue accepts only the given words (case-insensitive).
func oneOfValue(p *string, words ...string) flag.Value {
	return &value[string]{p: p, parse: func(s string) (string, error) {
		for _, w := range words {
			if strings.EqualFold(s, w) {
				return w, nil
			}
		}
		return "", fmt.Errorf("want %s", strings.Join(words, ", "))
	}}
}

// listValue is a comma-separated list; "" and "off" are the empty list.
func listValue(p *[]string) flag.Value {
	return parsedValue(p, func(s string) ([]string, error) {
		if strings.EqualFold(strings.TrimSpace(s), off) {
			return nil, nil
		}
		var out []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		return out, nil
	})
}

// parsedValue parses with parse and checks nothing else.
func parsedValue[T any](p *T, parse func(string) (T, error)) flag.Value {
	return &value[T]{p: p, parse: parse}
}

func boolFlag(p *bool) flag.Value {
	return &boolValue{value[bool]{p: p, parse: strconv.ParseBool}}
}

// durationValue is a duration of at least lo; withOff also accepts "off",
// stored as a negative duration (the parts' value for "never").
func durationValue(p *time.Duration, lo time.Duration, withOff bool) flag.Value {
	return parsedValue(p, func(s string) (time.Duration, error) {
		if withOff && strings.EqualFold(s, off) {
			return -1, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, err
		}
		if d < lo {
			if withOff && d < 0 {
				return 0, fmt.Errorf("want a duration of at least %s, or off", lo)
			}
			return 0, fmt.Errorf("want at least %s", lo)
		}
		return d, nil
	})
}

// intValue is an integer in [lo, hi]; withOff also accepts "off", stored as 0.
func intValue(p *int64, lo, hi int64, withOff bool) flag.Value {
	return parsedValue(p, func(s string) (int64, error) {
		if withOff && strings.EqualFold(s, off) {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, errors.Unwrap(err) // "invalid syntax", without repeating the value
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("want %d to %d", lo, hi)
		}
		return n, nil
	})
}

// maxInt32 bounds counts handed to parts that take an int32 or int.
const maxInt32 = math.MaxInt32

// floatValue is a number in (lo, hi] when loOpen, else [lo, hi]; withOff
// also accepts "off", stored as 0.
func floatValue(p *float64, lo, hi float64, loOpen, withOff bool) flag.Value {
	return parsedValue(p, func(s string) (float64, error) {
		if withOff && strings.EqualFold(s, off) {
			return 0, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, errors.Unwrap(err)
		}
		if math.IsNaN(f) || f > hi || f < lo || (loOpen && f == lo) {
			open := "["
			if loOpen {
				open = "("
			}
			return 0, fmt.Errorf("want a number in %s%g, %g]", open, lo, hi)
		}
		return f, nil
	})
}
