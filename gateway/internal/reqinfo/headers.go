package reqinfo

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
)

// Bounds of the caller-supplied ids the gateway accepts. Anything longer or
// malformed is replaced, never echoed, logged or written into an event.
const (
	// MaxRequestIDLen is the longest X-Request-Id kept, in bytes.
	MaxRequestIDLen = 128
	// MaxTracestateLen is the longest tracestate kept, in bytes (the W3C
	// Trace Context limit that vendors must propagate is 512).
	MaxTracestateLen = 512
	// maxTracestateMembers is the W3C limit of list members.
	maxTracestateMembers = 32
)

// IDs are the request id and the W3C trace context of one request, after
// validation: each is either the caller's valid value or a fresh one
// (Tracestate is dropped instead, since it cannot be made up).
type IDs struct {
	// RequestID is X-Request-Id.
	RequestID string
	// Traceparent is the W3C traceparent.
	Traceparent string
	// Tracestate is the W3C tracestate; "" when absent or dropped.
	Tracestate string
	// Changed is true when any value differs from what the caller sent.
	Changed bool
}

// Resolve validates the caller's request id and trace context and fills in
// what is missing or invalid: a request id that is empty, longer than
// MaxRequestIDLen or not printable ASCII is replaced by a random UUID; a
// traceparent that is not valid W3C Trace Context starts a new trace, and
// its tracestate is dropped with it (a tracestate belongs to its trace); a
// tracestate that is itself invalid is dropped. It is the one place where
// both the REST and the gRPC edge decide these values.
func Resolve(requestID, traceparent, tracestate string) IDs {
	out := IDs{RequestID: requestID, Traceparent: traceparent, Tracestate: tracestate}
	if !ValidRequestID(requestID) {
		out.RequestID, out.Changed = NewRequestID(), true
	}
	if !ValidTraceparent(traceparent) {
		out.Traceparent, out.Tracestate, out.Changed = NewTraceparent(), "", true
	}
	if out.Tracestate != "" && !ValidTracestate(out.Tracestate) {
		out.Tracestate, out.Changed = "", true
	}
	return out
}

// ValidRequestID reports whether s is a usable request id: 1 to
// MaxRequestIDLen bytes of printable ASCII without spaces.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// ValidTraceparent reports whether s is a W3C Trace Context traceparent:
// "version-traceid-parentid-flags" in lowercase hex, version not ff, trace
// and parent ids not all zeros; version 00 is exactly 55 bytes, a later
// version may append "-..." fields (parsed as 00, per the spec).
func ValidTraceparent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if !lowerHex(s[0:2]) || s[0:2] == "ff" || !lowerHex(s[3:35]) || !lowerHex(s[36:52]) || !lowerHex(s[53:55]) {
		return false
	}
	if s[3:35] == "00000000000000000000000000000000" || s[36:52] == "0000000000000000" {
		return false
	}
	if s[0:2] == "00" {
		return len(s) == 55
	}
	return len(s) == 55 || (s[55] == '-' && len(s) <= 512)
}

// ValidTracestate reports whether s is a W3C tracestate: at most
// MaxTracestateLen bytes, at most 32 comma-separated list members (empty
// ones allowed), each "key=value" with a key of lowercase letters, digits
// and _-*/ (optionally "tenant@system") and a value of printable ASCII
// except ',' and '=', not ending in a space.
func ValidTracestate(s string) bool {
	if len(s) > MaxTracestateLen {
		return false
	}
	members := 0
	for len(s) > 0 {
		var m string
		m, s, _ = strings.Cut(s, ",")
		m = strings.Trim(m, " \t")
		if m == "" {
			continue
		}
		members++
		if members > maxTracestateMembers {
			return false
		}
		k, v, ok := strings.Cut(m, "=")
		if !ok || !validTracestateKey(k) || !validTracestateValue(v) {
			return false
		}
	}
	return true
}

func validTracestateKey(k string) bool {
	tenant, system, multi := strings.Cut(k, "@")
	if !multi {
		return len(k) >= 1 && len(k) <= 256 && keyChars(k, true)
	}
	return len(tenant) >= 1 && len(tenant) <= 241 && keyChars(tenant, false) &&
		len(system) >= 1 && len(system) <= 14 && keyChars(system, true)
}

// keyChars checks lcalpha / digit / _ - * /, with a letter first when
// letterFirst (a tenant id may start with a digit).
func keyChars(s string, letterFirst bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9', c == '_', c == '-', c == '*', c == '/':
			if i == 0 && (letterFirst || c > '9' || c < '0') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func validTracestateValue(v string) bool {
	if len(v) < 1 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c > '~' || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// The ids below come from math/rand/v2's global generator: the runtime's
// per-thread ChaCha8 stream, seeded from the system's entropy, so they are
// as unpredictable as a v4 UUID needs, at a few nanoseconds and no system
// call or lock per request (crypto/rand costs both).

// NewRequestID returns a random UUID (version 4).
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}

// NewTraceparent starts a new W3C trace: version 00, random trace and
// parent ids (never all zero, which the format forbids), sampled.
func NewTraceparent() string {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:8], rand.Uint64()|1)
	binary.LittleEndian.PutUint64(b[8:16], rand.Uint64())
	binary.LittleEndian.PutUint64(b[16:24], rand.Uint64()|1)
	var out [55]byte
	copy(out[:], "00-")
	hex.Encode(out[3:35], b[:16])
	out[35] = '-'
	hex.Encode(out[36:52], b[16:])
	copy(out[52:], "-01")
	return string(out[:])
}
