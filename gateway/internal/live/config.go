package live

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// Defaults of Config.
const (
	DefaultMaxStreams        = 10000
	DefaultMaxStreamsPerUser = 8
	DefaultBuffer            = 256
	DefaultMaxAge            = time.Hour
	// DefaultCatchUpTimeout bounds the reading of the events missed since a
	// resume token.
	DefaultCatchUpTimeout = 30 * time.Second
	// DefaultHeartbeat is how often a stream without events is sent its
	// position.
	DefaultHeartbeat = 15 * time.Second
	// MinHeartbeat is the shortest Heartbeat allowed.
	MinHeartbeat = 100 * time.Millisecond
)

// Config configures a Hub.
type Config struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Topics maps logical topics (shop.cart.v1, ...) to Kafka topic names;
	// unmapped ones keep their name.
	Topics map[string]string
	// MaxStreams caps the open streams of this instance. Default 10000.
	MaxStreams int
	// MaxStreamsPerUser caps the open streams of one caller (the token's
	// user, or the client address when anonymous). Default 8.
	MaxStreamsPerUser int
	// Buffer is how many events a subscriber may fall behind before its
	// stream is ended with RESOURCE_EXHAUSTED. Default 256.
	Buffer int
	// MaxAge ends a stream after this long (the client resumes with its
	// last token); a stream also ends when the caller's token expires.
	// Default 1h.
	MaxAge time.Duration
	// CatchUpTimeout bounds the replay of the events after a resume token.
	// Default 30s.
	CatchUpTimeout time.Duration
	// Heartbeat is how long a stream may go without a message: after it,
	// the stream is sent its position (a response with only the resume
	// token). Default 15s, at least MinHeartbeat.
	Heartbeat time.Duration
	// Sarama, when set, is the client configuration. Default: sarama's,
	// with the gateway's client id.
	Sarama *sarama.Config
	// Logger receives the hub's logs. Required.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.MaxStreams = cmp.Or(c.MaxStreams, DefaultMaxStreams)
	c.MaxStreamsPerUser = cmp.Or(c.MaxStreamsPerUser, DefaultMaxStreamsPerUser)
	c.Buffer = cmp.Or(c.Buffer, DefaultBuffer)
	c.MaxAge = cmp.Or(c.MaxAge, DefaultMaxAge)
	c.CatchUpTimeout = cmp.Or(c.CatchUpTimeout, DefaultCatchUpTimeout)
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("live: no brokers"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("live: no logger"))
	}
	if c.MaxStreams < 0 || c.MaxStreamsPerUser < 0 || c.Buffer < 0 || c.MaxAge < 0 || c.CatchUpTimeout < 0 || c.Heartbeat < 0 {
		errs = append(errs, errors.New("live: negative limit"))
	}
	if c.Heartbeat != 0 && c.Heartbeat < MinHeartbeat {
		errs = append(errs, fmt.Errorf("live: heartbeat %s is shorter than %s", c.Heartbeat, MinHeartbeat))
	}
	return errors.Join(errs...)
}
