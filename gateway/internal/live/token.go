package live

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Bounds of a resume token: its encoded length and the partitions it may
// name. A token is opaque to clients but not trusted: it is decoded
// strictly and every value is range-checked.
const (
	MaxTokenLen       = 1024
	maxTokenParts     = 256
	maxPartition      = 1<<20 - 1
	maxOffset         = 1 << 62
	tokenVersion      = 1
	tokenVersionField = "v"
)

// errBadToken is the one answer to a token that does not decode: the
// client learns that it is not a token of this stream, not why.
var errBadToken = errors.New("the resume token is not valid for this stream")

// position is the place in a topic just after the events a client has
// seen: for each partition, the next offset to read.
type position map[int32]int64

// wireToken is the JSON inside a token: version, logical topic, and the
// offsets keyed by partition number in decimal.
type wireToken struct {
	V int              `json:"v"`
	T string           `json:"t"`
	O map[string]int64 `json:"o"`
}

// encodeToken makes the opaque token of pos on topic (a logical topic
// name, so that a renamed Kafka topic does not invalidate tokens):
// base64url of a small JSON object, partitions in order so that equal
// positions give equal tokens.
func encodeToken(topic string, pos position) string {
	w := wireToken{V: tokenVersion, T: topic, O: make(map[string]int64, len(pos))}
	for _, p := range slices.Sorted(maps.Keys(pos)) {
		w.O[strconv.Itoa(int(p))] = pos[p]
	}
	b, _ := json.Marshal(w) // a struct of strings and ints always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken parses a token for topic and checks every value.
func decodeToken(topic, tok string) (position, error) {
	if len(tok) == 0 || len(tok) > MaxTokenLen {
		return nil, errBadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, errBadToken
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireToken
	if err := dec.Decode(&w); err != nil || dec.More() {
		return nil, errBadToken
	}
	if w.V != tokenVersion || w.T != topic || len(w.O) == 0 || len(w.O) > maxTokenParts {
		return nil, errBadToken
	}
	pos := make(position, len(w.O))
	for k, off := range w.O {
		p, err := strconv.Atoi(k)
		if err != nil || p < 0 || p > maxPartition || strconv.Itoa(p) != k || off < 0 || off > maxOffset {
			return nil, errBadToken
		}
		pos[int32(p)] = off
	}
	return pos, nil
}

// merged is the component-wise maximum of a and b, a new map.
func merged(a, b position) position {
	out := maps.Clone(a)
	if out == nil {
		out = position{}
	}
	for p, o := range b {
		if o > out[p] {
			out[p] = o
		}
	}
	return out
}

func (p position) String() string { return fmt.Sprint(map[int32]int64(p)) }
