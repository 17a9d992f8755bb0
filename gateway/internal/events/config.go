package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// Defaults for Config, applied by New to every zero field.
const (
	// DefaultSource is the CloudEvents source of the gateway's events.
	DefaultSource = "/shop-gateway"
	// DefaultIdempotencyWindow is how long a success is replayable.
	DefaultIdempotencyWindow = 24 * time.Hour
	// DefaultIdempotencyMaxBytes bounds the idempotency store's memory.
	DefaultIdempotencyMaxBytes int64 = 64 << 20
	// DefaultAppendTimeout bounds the durable append of one event.
	DefaultAppendTimeout = 10 * time.Second
)

// Outbox is where the events go; *outbox.Outbox implements it. Admit reports
// without I/O whether a mutation may start (outbox.ErrFull when not);
// Append returns once the record is durable.
type Outbox interface {
	Admit() error
	Append(ctx context.Context, rec outbox.Record) (outbox.ID, error)
}

// Config configures an Emitter. Zero fields take the default in their
// comment; Services and Outbox are required.
type Config struct {
	// Services are the served proto services whose methods' EventSpecs are
	// read. Required.
	Services []protoreflect.ServiceDescriptor
	// Outbox receives the events. Required.
	Outbox Outbox
	// Source is the CloudEvents source attribute (ce_source): a URI
	// reference naming the deployment, at most MaxSourceLen bytes. Default
	// DefaultSource ("/shop-gateway"), which does not tell deployments
	// apart; the gateway sets one that does.
	Source string
	// DataSchema is the absolute URI of the AsyncAPI document describing
	// the events, without a fragment; each event's ce_dataschema is it with
	// SchemaPointer of the event's type. Default none: no ce_dataschema.
	DataSchema string
	// Format of the event data: FormatJSON (default) or FormatProtobuf.
	Format Format
	// Topics maps the logical topics of the EventSpecs to Kafka topic
	// names. A logical topic without an entry is used as the Kafka topic
	// name. An entry for a topic no method declares is an error. Default
	// none.
	Topics map[string]string
	// IdempotencyWindow is how long a successful response is replayed to a
	// request with the same Idempotency-Key. Default 24h; negative turns
	// the idempotency store off (the key then only fixes the ce_id).
	IdempotencyWindow time.Duration
	// IdempotencyMaxBytes bounds the memory of the idempotency store; the
	// oldest entries go first past it. Default 64 MiB.
	IdempotencyMaxBytes int64
	// AppendTimeout bounds the durable append of an event. The append does
	// not end with the request's context: the mutation has happened, so its
	// event is stored even when the client has gone. Default 10s.
	AppendTimeout time.Duration
	// Intents, when set, is the intent log: every mutation is recorded in
	// it before its upstream call, with an Idempotency-Key the gateway makes
	// when the client sent none, so that a change the gateway did not see
	// answered (it died, or the call's outcome was unknown) still gets its
	// event (see RunResolver). Lookup is then required. Default none.
	Intents IntentLog
	// Lookup asks a service what became of a keyed mutation, for Intents.
	Lookup LookupFunc
	// ResolveAfter is how long after an open intent's deadline its service
	// is asked about it. Default 5s (DefaultResolveAfter).
	ResolveAfter time.Duration
	// CallTimeout is the deadline of a mutation whose caller set none (the
	// forwarder's). Default 10s (DefaultCallTimeout).
	CallTimeout time.Duration
	// CompactAfter is how long an intent may stay open (its service
	// unreachable) before it is written again at the intent log's tail, so
	// that the log is acknowledged past it. Default 30s.
	CompactAfter time.Duration
	// Logger receives failures to store an event and outbox-full changes.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock for ce_time and the idempotency window. Default
	// time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	c.Source = cmp.Or(c.Source, DefaultSource)
	c.Format = cmp.Or(c.Format, FormatJSON)
	c.IdempotencyWindow = cmp.Or(c.IdempotencyWindow, DefaultIdempotencyWindow)
	c.IdempotencyMaxBytes = cmp.Or(c.IdempotencyMaxBytes, DefaultIdempotencyMaxBytes)
	c.AppendTimeout = cmp.Or(c.AppendTimeout, DefaultAppendTimeout)
	c.ResolveAfter = cmp.Or(c.ResolveAfter, DefaultResolveAfter)
	c.CallTimeout = cmp.Or(c.CallTimeout, DefaultCallTimeout)
	c.CompactAfter = cmp.Or(c.CompactAfter, defaultCompactAfter)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with c at once. New calls it after
// applying the defaults; it does not look at the EventSpecs (New does).
func (c *Config) Validate() error {
	var errs []error
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("no services"))
	}
	if c.Outbox == nil {
		errs = append(errs, errors.New("no outbox"))
	}
	switch c.Format {
	case FormatJSON, FormatProtobuf:
	default:
		errs = append(errs, fmt.Errorf("format %q: want %s or %s", c.Format, FormatJSON, FormatProtobuf))
	}
	if err := checkSource(c.Source); err != nil {
		errs = append(errs, err)
	}
	if c.DataSchema != "" {
		if u, err := url.Parse(c.DataSchema); err != nil || !u.IsAbs() || u.Fragment != "" || strings.ContainsAny(c.DataSchema, " \t\r\n#") {
			errs = append(errs, fmt.Errorf("data schema %q: want an absolute URI without a fragment", c.DataSchema))
		}
	}
	if c.IdempotencyMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("idempotency max bytes %d is negative", c.IdempotencyMaxBytes))
	}
	if c.Intents != nil && c.Lookup == nil {
		errs = append(errs, errors.New("intents without a lookup"))
	}
	if c.ResolveAfter < 0 {
		errs = append(errs, fmt.Errorf("resolve after %s is negative", c.ResolveAfter))
	}
	if c.CompactAfter < 0 {
		errs = append(errs, fmt.Errorf("compact after %s is negative", c.CompactAfter))
	}
	if c.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout %s is negative", c.CallTimeout))
	}
	if c.AppendTimeout < 0 {
		errs = append(errs, fmt.Errorf("append timeout %s is negative", c.AppendTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("events: invalid config: %w", err)
	}
	return nil
}

// MaxSourceLen bounds Config.Source, in bytes.
const MaxSourceLen = 255

// checkSource accepts a CloudEvents source: a non-empty URI reference of
// printable ASCII without spaces, at most MaxSourceLen bytes.
func checkSource(src string) error {
	if src == "" || len(src) > MaxSourceLen {
		return fmt.Errorf("source %q: want 1 to %d bytes", src, MaxSourceLen)
	}
	for i := 0; i < len(src); i++ {
		if src[i] <= ' ' || src[i] >= 0x7f {
			return fmt.Errorf("source %q: want printable ASCII without spaces", src)
		}
	}
	if _, err := url.Parse(src); err != nil {
		return fmt.Errorf("source %q: not a URI reference: %w", src, err)
	}
	return nil
}
