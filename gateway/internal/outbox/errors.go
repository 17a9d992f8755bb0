package outbox

import "errors"

var (
	// ErrFull is returned by Append when the record would take the un-acked
	// data past Options.MaxBytes, and by Admit once the un-acked data has
	// reached the admission threshold (MaxBytes minus Options.Headroom). It
	// means the relay is behind (typically Kafka is down); callers map it to
	// Unavailable / HTTP 503.
	ErrFull = errors.New("outbox: full")

	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("outbox: closed")

	// ErrTooLarge is returned by Append for a record whose encoding exceeds
	// Options.MaxRecordBytes.
	ErrTooLarge = errors.New("outbox: record too large")

	// ErrCorrupt is returned by Open when a segment holds damaged data that
	// cannot be explained by a crash in the middle of a write: a checksum
	// failure followed by valid records, a damaged sealed segment, or a gap
	// in the record ids. Open never repairs such damage on its own, because
	// doing so would silently drop records that were reported durable.
	ErrCorrupt = errors.New("outbox: corrupt")

	// ErrFailed wraps the I/O error after which the outbox stopped accepting
	// appends: a failed fsync leaves the file in an unknown state (the kernel
	// may have dropped the dirty pages), so the only safe recovery is Close
	// and Open again, which rescans the files. Reading and acking go on.
	ErrFailed = errors.New("outbox: write failed, reopen required")

	// ErrLocked is returned by Open when another process holds the directory.
	ErrLocked = errors.New("outbox: directory locked by another process")
)
