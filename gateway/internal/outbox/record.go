package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// ID is the position of a record in the outbox: ids are assigned by Append in
// commit order, start at 1 and have no gaps. The zero ID means "none".
type ID uint64

// Header is one record header. It maps onto a Kafka record header; a nil
// Value stays nil (Kafka's null header value).
type Header struct {
	Key   []byte
	Value []byte
}

// Record is what the outbox stores: a message for a topic, kept free of any
// broker library but mapping 1:1 onto a Kafka record. A nil Key and an empty
// Key are kept apart (Kafka partitions them differently), and so are a nil
// and an empty Value (nil is a tombstone).
type Record struct {
	Topic   string
	Key     []byte
	Headers []Header
	Value   []byte
}

// Entry is a record read back by Next, with the ID to Ack it by and the time
// its Append was committed.
type Entry struct {
	ID   ID
	Time time.Time
	Record
}

// On disk a record is a frame:
//
//	length  uint32 little-endian  payload length
//	crc     uint32 little-endian  CRC-32C (Castagnoli) of the payload
//	payload:
//	  version  byte     payloadVersion
//	  id       uint64   little-endian
//	  time     int64    little-endian, Unix nanoseconds of the commit
//	  topic    uvarint length, bytes
//	  key      uvarint length+1 (0 = nil), bytes
//	  headers  uvarint count, then per header: uvarint key length, key,
//	           uvarint value length+1 (0 = nil), value
//	  value    uvarint length+1 (0 = nil), bytes
//
// The id and time are filled in by the writer when the batch is committed,
// so the caller's goroutine can do the encoding in parallel.
const (
	frameHeaderSize = 8
	payloadVersion  = 1
	idOffset        = 1 // within the payload
	timeOffset      = 9
	fixedPayload    = 17
	// minPayloadSize is the smallest valid payload: the fixed part plus one
	// byte each for topic, key, header count and value.
	minPayloadSize = fixedPayload + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errMalformed = errors.New("malformed payload")

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// nullableLen is the encoded size of a byte slice whose nil-ness is kept.
func nullableLen(b []byte) int {
	if b == nil {
		return 1
	}
	return uvarintLen(uint64(len(b))+1) + len(b)
}

// payloadSize is the exact encoded payload size of r.
func payloadSize(r *Record) int {
	n := fixedPayload + uvarintLen(uint64(len(r.Topic))) + len(r.Topic)
	n += nullableLen(r.Key)
	n += uvarintLen(uint64(len(r.Headers)))
	for _, h := range r.Headers {
		n += uvarintLen(uint64(len(h.Key))) + len(h.Key) + nullableLen(h.Value)
	}
	return n + nullableLen(r.Value)
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// appendFrame appends the frame of r to dst with a zero id, time and crc;
// sealFrame fills them in.
func appendFrame(dst []byte, r *Record, payloadLen int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(payloadLen))
	dst = append(dst, 0, 0, 0, 0) // crc
	dst = append(dst, payloadVersion)
	dst = append(dst, make([]byte, fixedPayload-1)...) // id, time
	dst = binary.AppendUvarint(dst, uint64(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = appendNullable(dst, r.Key)
	dst = binary.AppendUvarint(dst, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendNullable(dst, h.Value)
	}
	return appendNullable(dst, r.Value)
}

// sealFrame stamps id and commit time into an encoded frame and computes its
// checksum.
func sealFrame(frame []byte, id ID, now int64) {
	p := frame[frameHeaderSize:]
	binary.LittleEndian.PutUint64(p[idOffset:], uint64(id))
	binary.LittleEndian.PutUint64(p[timeOffset:], uint64(now))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(p, crcTable))
}

// frameStatus tells what sits at the start of b.
type frameStatus int

const (
	frameOK        frameStatus = iota
	frameTruncated             // header or payload runs past the end of b
	frameBad                   // impossible length, checksum or version mismatch
)

// checkFrame validates the frame at the start of b without decoding it and
// returns its payload.
func checkFrame(b []byte) ([]byte, frameStatus) {
	if len(b) < frameHeaderSize {
		return nil, frameTruncated
	}
	n := binary.LittleEndian.Uint32(b)
	if n < minPayloadSize {
		// A zero length is what a crash leaves where the file was extended
		// but the data never reached the disk.
		return nil, frameBad
	}
	if uint64(n) > uint64(len(b)-frameHeaderSize) {
		return nil, frameTruncated
	}
	p := b[frameHeaderSize : frameHeaderSize+int(n)]
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(b[4:]) || p[0] != payloadVersion {
		return nil, frameBad
	}
	return p, frameOK
}

func payloadID(p []byte) ID { return ID(binary.LittleEndian.Uint64(p[idOffset:])) }

// decoder reads payloads; it keeps topic names so that each distinct topic
// is allocated once.
type decoder struct {
	topics map[string]string
}

func readUvarint(p []byte, off *int) (uint64, error) {
	v, n := binary.Uvarint(p[*off:])
	if n <= 0 {
		return 0, errMalformed
	}
	*off += n
	return v, nil
}

func readBytes(p []byte, off *int, n uint64) ([]byte, error) {
	if n > uint64(len(p)-*off) {
		return nil, errMalformed
	}
	b := p[*off : *off+int(n) : *off+int(n)]
	*off += int(n)
	return b, nil
}

func readNullable(p []byte, off *int) ([]byte, error) {
	n, err := readUvarint(p, off)
	if err != nil || n == 0 {
		return nil, err
	}
	return readBytes(p, off, n-1)
}

// decode parses a checked payload into an Entry. The entry's byte slices
// alias p, so p must not be reused by the caller.
func (d *decoder) decode(p []byte) (Entry, error) {
	if len(p) < fixedPayload || p[0] != payloadVersion {
		return Entry{}, errMalformed
	}
	e := Entry{
		ID:   payloadID(p),
		Time: time.Unix(0, int64(binary.LittleEndian.Uint64(p[timeOffset:]))),
	}
	off := fixedPayload
	n, err := readUvarint(p, &off)
	if err != nil {
		return Entry{}, err
	}
	topic, err := readBytes(p, &off, n)
	if err != nil {
		return Entry{}, err
	}
	e.Topic = d.topic(topic)
	if e.Key, err = readNullable(p, &off); err != nil {
		return Entry{}, err
	}
	count, err := readUvarint(p, &off)
	if err != nil {
		return Entry{}, err
	}
	// Each header takes at least two bytes, which bounds a corrupt count.
	if count > uint64(len(p)-off)/2 {
		return Entry{}, errMalformed
	}
	if count > 0 {
		e.Headers = make([]Header, count)
		for i := range e.Headers {
			kl, err := readUvarint(p, &off)
			if err != nil {
				return Entry{}, err
			}
			if e.Headers[i].Key, err = readBytes(p, &off, kl); err != nil {
				return Entry{}, err
			}
			if e.Headers[i].Value, err = readNullable(p, &off); err != nil {
				return Entry{}, err
			}
		}
	}
	if e.Value, err = readNullable(p, &off); err != nil {
		return Entry{}, err
	}
	if off != len(p) {
		return Entry{}, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(p)-off)
	}
	return e, nil
}

func (d *decoder) topic(b []byte) string {
	if s, ok := d.topics[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.topics == nil {
		d.topics = make(map[string]string)
	}
	if len(d.topics) < 1024 {
		d.topics[s] = s
	}
	return s
}
