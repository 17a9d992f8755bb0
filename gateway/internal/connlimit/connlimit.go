// Package connlimit caps the connections a listener holds open at once,
// overall and per client address, so that a flood of connections (idle,
// slow or abandoned) cannot exhaust the process's file descriptors, and
// the per-address share is small enough that a few addresses cannot fill
// the overall cap. A connection over a cap is accepted, told why in one
// write (an HTTP response for the REST port), and closed; the listener goes
// on accepting. A new connection must send its first byte within a short
// bound, so that connections opened and left silent are closed long before
// the server's own header or handshake timeouts.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	// PerIPShare is the default per-address cap as a share of the overall
	// cap (1/16): it takes 16 addresses, not 4, to fill the overall cap.
	PerIPShare = 16
	// MaxDefaultPerIP bounds the default per-address cap.
	MaxDefaultPerIP = 256
	// DefaultFirstByteTimeout is how long a new connection may stay silent
	// before its first byte.
	DefaultFirstByteTimeout = 3 * time.Second
)

// DefaultMaxPerIP is the per-address cap used when none is configured:
// max/16, at most 256 and at least 1.
func DefaultMaxPerIP(total int) int {
	return min(max(1, total/PerIPShare), MaxDefaultPerIP)
}

// Config configures a Listener.
type Config struct {
	// Max caps the connections open at once. 0 means DefaultMax().
	Max int
	// MaxPerIP caps the connections of one client address (an IPv6
	// client's /64, which one host usually holds whole). 0 means
	// DefaultMaxPerIP(Max).
	MaxPerIP int
	// Shared are the addresses that speak for many clients (the trusted
	// proxies in front of the gateway): their connections count against Max
	// only, not against MaxPerIP. Empty: none.
	Shared []netip.Prefix
	// FirstByteTimeout closes a new connection that has sent nothing for
	// this long. The server's own read deadlines still apply; this one
	// ends with the first byte. 0 means DefaultFirstByteTimeout; negative
	// turns it off.
	FirstByteTimeout time.Duration
	// Refuse, when set, is written to a refused connection before it is
	// closed; it receives whether the per-address cap (true) or the overall
	// cap (false) was hit. Nil closes without a word.
	Refuse func(perIP bool) []byte
	// OnRefuse, when set, is called for every refused connection.
	OnRefuse func(remote string, perIP bool)
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Max < 0 || c.MaxPerIP < 0 {
		errs = append(errs, errors.New("connection caps must not be negative"))
	}
	if c.Max > 0 && c.MaxPerIP > c.Max {
		errs = append(errs, errors.New("the per-address cap exceeds the overall cap"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Max == 0 {
		c.Max = DefaultMax()
	}
	if c.MaxPerIP == 0 {
		c.MaxPerIP = DefaultMaxPerIP(c.Max)
	}
	if c.FirstByteTimeout == 0 {
		c.FirstByteTimeout = DefaultFirstByteTimeout
	}
}

// Listener is a net.Listener with connection caps.
type Listener struct {
	net.Listener
	cfg   Config
	open  atomic.Int64
	mu    sync.Mutex
	perIP map[netip.Addr]int
}

// Wrap caps the connections of l.
func Wrap(l net.Listener, cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Listener{Listener: l, cfg: cfg, perIP: map[netip.Addr]int{}}, nil
}

// Open is the number of connections open now.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Accept returns the next connection within the caps; connections over a
// cap are refused here and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		if l.open.Add(1) > int64(l.cfg.Max) {
			l.open.Add(-1)
			l.refuse(c, false)
			continue
		}
		l.mu.Lock()
		if l.perIP[addr] >= l.cfg.MaxPerIP && !l.shared(addr) {
			l.mu.Unlock()
			l.open.Add(-1)
			l.refuse(c, true)
			continue
		}
		l.perIP[addr]++
		l.mu.Unlock()
		cc := &conn{Conn: c, l: l, addr: addr}
		if l.cfg.FirstByteTimeout > 0 {
			cc.firstBy = time.Now().Add(l.cfg.FirstByteTimeout)
			cc.waiting.Store(true)
			_ = c.SetReadDeadline(cc.firstBy)
		}
		return cc, nil
	}
}

// shared reports whether addr is one of Config.Shared.
func (l *Listener) shared(addr netip.Addr) bool {
	for _, p := range l.cfg.Shared {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// refuse answers and closes c without blocking Accept on a slow reader.
func (l *Listener) refuse(c net.Conn, perIP bool) {
	if l.cfg.OnRefuse != nil {
		l.cfg.OnRefuse(c.RemoteAddr().String(), perIP)
	}
	if l.cfg.Refuse == nil {
		c.Close()
		return
	}
	msg := l.cfg.Refuse(perIP)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(msg)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		c.Close()
	}()
}

func (l *Listener) release(addr netip.Addr) {
	l.mu.Lock()
	if n := l.perIP[addr]; n <= 1 {
		delete(l.perIP, addr)
	} else {
		l.perIP[addr] = n - 1
	}
	l.mu.Unlock()
	l.open.Add(-1)
}

// remoteAddr is the key of c's client: its IPv4 address, or its IPv6
// address's /64 (the smallest block a host is usually given).
func remoteAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		a = netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a
}

// conn releases its slot once when closed, and holds its read deadline to
// the first-byte bound until the first byte has arrived.
type conn struct {
	net.Conn
	l    *Listener
	addr netip.Addr
	once sync.Once

	waiting atomic.Bool // no byte read yet and a first-byte bound is set
	mu      sync.Mutex  // guards firstBy, asked and the deadline set
	firstBy time.Time   // the first-byte deadline; zero once a byte arrived
	asked   time.Time   // the read deadline the server last asked for
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.waiting.Load() {
		c.mu.Lock()
		if c.waiting.Load() {
			c.waiting.Store(false)
			c.firstBy = time.Time{}
			_ = c.Conn.SetReadDeadline(c.asked)
		}
		c.mu.Unlock()
	}
	return n, err
}

// SetReadDeadline sets t, or the first-byte deadline when that is earlier
// and no byte has arrived yet.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = t
	return c.Conn.SetReadDeadline(c.bounded(t))
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// bounded is t held to the first-byte deadline while one applies.
func (c *conn) bounded(t time.Time) time.Time {
	if c.firstBy.IsZero() || (!t.IsZero() && t.Before(c.firstBy)) {
		return t
	}
	return c.firstBy
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
