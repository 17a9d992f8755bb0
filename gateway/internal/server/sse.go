package server

import (
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// mimeEventStream is the media type of Server-Sent Events.
const mimeEventStream = "text/event-stream"

// noReferrer is the Referrer-Policy of the streams' answers.
const noReferrer = "no-referrer"

// sseHeartbeat is how often an idle Server-Sent Events stream gets a
// comment line, so that proxies and clients see a live connection.
const sseHeartbeat = 15 * time.Second

// sseMarshaler writes a server-streaming RPC's messages as Server-Sent
// Events, chosen by grpc-gateway for requests that Accept
// text/event-stream: each message as
//
//	id: <resume token>
//	event: <CloudEvents type>
//	data: <the event payload JSON>
//
// a message without an event (the heartbeat) as a comment line, followed
// by "id: <resume token>" when it carries the stream's position, and an
// error that ends the stream as an "error" event with the google.rpc.Status
// JSON. Everything that is not a stream message (an error answered before
// the stream began) is the API's usual JSON.
type sseMarshaler struct {
	json  runtime.Marshaler
	event func(proto.Message) (string, []byte, bool)
}

var (
	_ runtime.Marshaler         = (*sseMarshaler)(nil)
	_ runtime.Delimited         = (*sseMarshaler)(nil)
	_ runtime.StreamContentType = (*sseMarshaler)(nil)
)

func (m *sseMarshaler) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case map[string]any: // {"result": msg}: one streamed message
		if msg, ok := v["result"].(proto.Message); ok && len(v) == 1 {
			return m.message(msg)
		}
	case map[string]proto.Message: // {"error": status}: the stream's end
		if st, ok := v["error"]; ok && len(v) == 1 {
			data, err := m.json.Marshal(st)
			if err != nil {
				return nil, err
			}
			return sseField(sseField([]byte(nil), "event", "error"), "data", string(data)), nil
		}
	}
	return m.json.Marshal(v)
}

func (m *sseMarshaler) message(msg proto.Message) ([]byte, error) {
	var (
		event string
		data  []byte
		ok    bool
	)
	if m.event != nil {
		event, data, ok = m.event(msg)
	}
	tok := resumeTokenOf(msg)
	if !ok {
		// A heartbeat; with a token, the stream's position: an event
		// without data, which sets the EventSource's last event id (sent
		// back as Last-Event-ID) and fires nothing.
		b := []byte(": heartbeat\n")
		if tok != "" {
			b = sseField(b, "id", tok)
		}
		return b, nil
	}
	var b []byte
	if tok != "" {
		b = sseField(b, "id", tok)
	}
	b = sseField(b, "event", event)
	return sseField(b, "data", string(data)), nil
}

// sseField appends "name: value\n", one data line per line of value (the
// format's rule for multi-line data), and never lets a line break inside
// the value start a field of its own.
func sseField(b []byte, name, value string) []byte {
	for _, line := range strings.Split(strings.ReplaceAll(value, "\r\n", "\n"), "\n") {
		line = strings.ReplaceAll(line, "\r", "")
		b = append(b, name...)
		b = append(b, ": "...)
		b = append(b, line...)
		b = append(b, '\n')
	}
	return b
}

// resumeTokenOf is a streamed message's resume_token field, if it has one.
func resumeTokenOf(msg proto.Message) string {
	r := msg.ProtoReflect()
	if fd := r.Descriptor().Fields().ByName("resume_token"); fd != nil {
		return r.Get(fd).String()
	}
	return ""
}

func (m *sseMarshaler) Unmarshal(data []byte, v any) error     { return m.json.Unmarshal(data, v) }
func (m *sseMarshaler) NewDecoder(r io.Reader) runtime.Decoder { return m.json.NewDecoder(r) }
func (m *sseMarshaler) NewEncoder(w io.Writer) runtime.Encoder { return m.json.NewEncoder(w) }

// ContentType is JSON: only errors answered before a stream are written
// with it; the stream itself is text/event-stream (StreamContentType).
func (m *sseMarshaler) ContentType(any) string       { return "application/json" }
func (m *sseMarshaler) StreamContentType(any) string { return mimeEventStream }

// Delimiter ends each event with the blank line that dispatches it.
func (m *sseMarshaler) Delimiter() []byte { return []byte("\n") }

// acceptsEventStream reports whether an Accept header asks for
// text/event-stream.
func acceptsEventStream(h http.Header) bool {
	for _, v := range h.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == mimeEventStream {
				return true
			}
		}
	}
	return false
}

// streamEdge prepares the REST requests of server-streaming routes: such a
// response lives as long as the stream, so the server's read and write
// timeouts (which bound ordinary requests) are lifted for it; the stream
// bounds itself (the caller's token expiry, a maximum age). A request
// that accepts text/event-stream gets Server-Sent Events with heartbeats;
// others get grpc-gateway's newline-delimited JSON. Other routes never get
// the event-stream marshaler.
func streamEdge(next http.Handler, routes []restRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sse := acceptsEventStream(r.Header)
		if !isStreamRoute(routes, r.Method, r.URL.Path) {
			if sse {
				r.Header.Set("Accept", "application/json")
			}
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		// A stream is never stored, not even one of public events.
		if rec, ok := w.(*statusRecorder); ok {
			rec.cacheRead = false
		}
		w.Header().Set("Cache-Control", cacheNever)
		// A page never sends a stream's URL (an access_token in it) on as
		// a Referer.
		w.Header().Set("Referrer-Policy", noReferrer)
		w.Header().Set("X-Accel-Buffering", "no")
		if sse {
			r.Header.Set("Accept", mimeEventStream)
			r = r.WithContext(withHeartbeat(r.Context(), sseHeartbeat))
		} else {
			r.Header.Del("Accept")
		}
		next.ServeHTTP(w, r)
	})
}

func isStreamRoute(routes []restRoute, method, path string) bool {
	for _, rt := range routes {
		if rt.stream && rt.method == method && rt.tmpl.Match(path) {
			return true
		}
	}
	return false
}
