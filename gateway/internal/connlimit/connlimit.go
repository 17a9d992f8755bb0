// Package connlimit caps the connections a listener holds open at once,
// overall and per client address, so that a flood of connections (idle,
// slow or abandoned) cannot exhaust the process's file descriptors. A
// connection over a cap is accepted, told why in one write (an HTTP
// response for the REST port), and closed; the listener goes on accepting.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Listener.
type Config struct {
	// Max caps the connections open at once. 0 means DefaultMax().
	Max int
	// MaxPerIP caps the connections of one client address. 0 means Max/4.
	MaxPerIP int
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
		c.MaxPerIP = max(1, c.Max/4)
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
		if l.perIP[addr] >= l.cfg.MaxPerIP {
			l.mu.Unlock()
			l.open.Add(-1)
			l.refuse(c, true)
			continue
		}
		l.perIP[addr]++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, addr: addr}, nil
	}
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

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// conn releases its slot once when closed.
type conn struct {
	net.Conn
	l    *Listener
	addr netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
