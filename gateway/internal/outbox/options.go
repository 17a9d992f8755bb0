package outbox

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for Options. They are applied by Open to every zero field.
const (
	// DefaultMaxBytes caps the un-acked data at 256 MiB.
	DefaultMaxBytes int64 = 256 << 20
	// DefaultSegmentBytes rolls over to a new segment file after 16 MiB.
	DefaultSegmentBytes int64 = 16 << 20
	// DefaultMaxRecordBytes matches sarama's Producer.MaxMessageBytes
	// default, so that whatever the outbox accepts, the relay can publish.
	DefaultMaxRecordBytes = 1_000_000
	// DefaultAckInterval is how often acked progress is written to disk.
	DefaultAckInterval = 100 * time.Millisecond
)

// Options configures an Outbox. The zero value is usable: every zero field
// takes the default named in its comment.
type Options struct {
	// MaxBytes caps the un-acked data (framed records on disk plus appends
	// in flight). Append returns ErrFull past it. Default DefaultMaxBytes
	// (256 MiB).
	MaxBytes int64

	// Headroom is how far below MaxBytes Admit starts refusing. A caller
	// that asks Admit before a mutation and Appends its event after it
	// needs room for the events of the mutations admitted in between, or
	// those events would fail with ErrFull after the mutation happened.
	// Default MaxBytes/16; a negative value means none (Admit refuses only
	// at MaxBytes).
	Headroom int64

	// SegmentBytes is the size after which the writer rolls over to a new
	// segment file. Fully acked segments are deleted whole, so this is also
	// the granularity at which disk space is given back. Default
	// DefaultSegmentBytes (16 MiB).
	SegmentBytes int64

	// MaxRecordBytes bounds one encoded record; larger ones get ErrTooLarge.
	// Default DefaultMaxRecordBytes (1,000,000, sarama's
	// Producer.MaxMessageBytes default), lowered to what SegmentBytes and
	// MaxBytes hold when they are smaller.
	MaxRecordBytes int

	// AckInterval is how often acked progress is persisted and fully acked
	// segments are deleted. After a crash up to this much acked progress is
	// delivered again (at-least-once). Default DefaultAckInterval (100ms).
	AckInterval time.Duration

	// Logger receives recovery and failure reports. Default: discard.
	Logger *slog.Logger

	// CommitDelay is how long the writer waits for more appends before it
	// writes and syncs a batch, when the previous batch showed concurrent
	// appenders (more than one record). A few hundred microseconds trade
	// that much latency for larger batches and far fewer fsyncs under load;
	// a lone appender is never delayed. Default 0 (commit at once); negative
	// is treated as 0.
	CommitDelay time.Duration

	// SyncInterval, when positive, makes an append return once its record
	// is written to the file (the page cache) instead of once it is synced,
	// and has the writer fdatasync at most this often, when something was
	// written since the last sync: an append then survives a crash of the
	// process at once and a crash of the machine (power loss) after at most
	// SyncInterval. Zero, the default, syncs every batch before its appends
	// return (group commit), so every returned append survives power loss.
	SyncInterval time.Duration

	// NoSync skips every fsync. Records then survive a process crash but not
	// a machine crash. For tests and benchmarks only. Default false.
	NoSync bool

	// onSync, when set, is called after each fdatasync of a segment by the
	// writer: a test seam that counts them.
	onSync func()
}

func (o *Options) setDefaults() {
	o.MaxBytes = cmp.Or(o.MaxBytes, DefaultMaxBytes)
	o.Headroom = cmp.Or(o.Headroom, o.MaxBytes/16)
	if o.Headroom < 0 {
		o.Headroom = 0
	}
	o.SegmentBytes = cmp.Or(o.SegmentBytes, DefaultSegmentBytes)
	o.MaxRecordBytes = cmp.Or(o.MaxRecordBytes, int(min(DefaultMaxRecordBytes, o.SegmentBytes-frameHeaderSize, o.MaxBytes-frameHeaderSize)))
	o.AckInterval = cmp.Or(o.AckInterval, DefaultAckInterval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with o at once. Open calls it after
// applying the defaults.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBytes %d is negative", o.MaxBytes))
	}
	if o.MaxBytes < int64(o.MaxRecordBytes)+frameHeaderSize && o.MaxBytes > 0 {
		errs = append(errs, fmt.Errorf("MaxBytes %d cannot hold a record of MaxRecordBytes %d", o.MaxBytes, o.MaxRecordBytes))
	}
	if o.Headroom >= o.MaxBytes && o.MaxBytes > 0 {
		errs = append(errs, fmt.Errorf("Headroom %d must be below MaxBytes %d", o.Headroom, o.MaxBytes))
	}
	if o.SegmentBytes < 1024 {
		errs = append(errs, fmt.Errorf("SegmentBytes %d is below the 1 KiB minimum", o.SegmentBytes))
	}
	if o.MaxRecordBytes < minPayloadSize {
		errs = append(errs, fmt.Errorf("MaxRecordBytes %d is below the %d byte minimum", o.MaxRecordBytes, minPayloadSize))
	}
	if int64(o.MaxRecordBytes)+frameHeaderSize > o.SegmentBytes {
		errs = append(errs, fmt.Errorf("MaxRecordBytes %d does not fit in SegmentBytes %d", o.MaxRecordBytes, o.SegmentBytes))
	}
	if o.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("SyncInterval %s is negative", o.SyncInterval))
	}
	if o.AckInterval < 0 {
		errs = append(errs, fmt.Errorf("AckInterval %s is negative", o.AckInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbox: invalid options: %w", err)
	}
	return nil
}
