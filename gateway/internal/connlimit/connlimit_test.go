package connlimit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

func TestDefaultMaxPerIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ total, want int }{
		{1, 1}, {15, 1}, {16, 1}, {64, 4}, {1000, 62}, {4096, 256}, {10000, 256},
	} {
		if got := DefaultMaxPerIP(tc.total); got != tc.want {
			t.Errorf("DefaultMaxPerIP(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
}

// acceptAll wraps a loopback listener with cfg and accepts until the test
// ends, handing accepted connections to conns.
func acceptAll(tb testing.TB, cfg Config) (*Listener, chan net.Conn) {
	tb.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := Wrap(raw, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	conns := make(chan net.Conn, 1024)
	var accepted []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			conns <- c
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	})
	return l, conns
}

func dialFrom(tb testing.TB, src string, addr net.Addr) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatalf("dial from %s: %v", src, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestFirstByteTimeout: a connection that stays silent is cut at the
// first-byte bound even though the server asked for a later deadline; one
// that sends a byte in time then has the server's deadline, not the bound.
func TestFirstByteTimeout(t *testing.T) {
	t.Parallel()
	const bound = 300 * time.Millisecond
	l, conns := acceptAll(t, Config{Max: 10, FirstByteTimeout: bound})

	silent := dialFrom(t, "127.0.0.1", l.Addr())
	sc := <-conns
	_ = sc.SetReadDeadline(time.Now().Add(time.Minute)) // what net/http does
	start := time.Now()
	_, err := sc.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent connection: read %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*bound {
		t.Errorf("silent connection cut after %v, want about %v", d, bound)
	}
	silent.Close()
	sc.Close() // frees the address's one slot (the default share of 10)

	talker := dialFrom(t, "127.0.0.1", l.Addr())
	tc := <-conns
	_ = tc.SetDeadline(time.Now().Add(time.Minute)) // what grpc-go does
	if _, err := talker.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := tc.Read(buf); err != nil {
		t.Fatalf("first byte: %v", err)
	}
	go func() {
		time.Sleep(3 * bound)
		_, _ = talker.Write([]byte("b"))
	}()
	if _, err := tc.Read(buf); err != nil || buf[0] != 'b' {
		t.Fatalf("a byte after the bound, once the first arrived: %q %v, want b", buf, err)
	}
}

// TestFirstByteTimeoutOff: a negative bound leaves silent connections to
// the server's deadlines.
func TestFirstByteTimeoutOff(t *testing.T) {
	t.Parallel()
	l, conns := acceptAll(t, Config{Max: 10, FirstByteTimeout: -1})
	dialFrom(t, "127.0.0.1", l.Addr())
	c := <-conns
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) < 400*time.Millisecond {
		t.Errorf("read %v after %v, want the server's own 500ms deadline", err, time.Since(start))
	}
}

// TestFourAddressesCannotFillTheCap: with the default per-address share,
// four addresses opening as many connections as they can hold a quarter
// of the overall cap at most, and another client is accepted.
func TestFourAddressesCannotFillTheCap(t *testing.T) {
	t.Parallel()
	const total, held = 64, 4 * 4 // per address: 64/16
	l, conns := acceptAll(t, Config{Max: total, FirstByteTimeout: -1})
	for i := 2; i <= 5; i++ {
		for range 20 {
			dialFrom(t, fmt.Sprintf("127.0.0.%d", i), l.Addr())
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() < held && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let any excess arrive, were the cap broken
	if got, want := l.Open(), held; got != want {
		t.Fatalf("open connections from 4 flooding addresses: %d, want %d", got, want)
	}
	c := dialFrom(t, "127.0.0.1", l.Addr())
	select {
	case got := <-drain(conns, held):
		if got.RemoteAddr().String() != c.LocalAddr().String() {
			t.Errorf("accepted %v, want the other client %v", got.RemoteAddr(), c.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("another client was not accepted")
	}
}

// drain skips the first n connections of conns and returns a channel of
// the next one.
func drain(conns chan net.Conn, n int) chan net.Conn {
	out := make(chan net.Conn, 1)
	go func() {
		for range n {
			<-conns
		}
		out <- <-conns
	}()
	return out
}

// TestRemoteAddrKey: IPv4 clients are keyed by address, IPv6 ones by /64.
func TestRemoteAddrKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:5000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5000", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:5000", "2001:db8:1:2::"},
		{"[2001:db8:1:2:ffff::1]:5000", "2001:db8:1:2::"},
	} {
		got := remoteAddr(fakeConn{remote: tc.remote})
		if got != netip.MustParseAddr(tc.want) {
			t.Errorf("remoteAddr(%s) = %v, want %s", tc.remote, got, tc.want)
		}
	}
}

type fakeConn struct {
	net.Conn
	remote string
}

func (f fakeConn) RemoteAddr() net.Addr {
	ap := netip.MustParseAddrPort(f.remote)
	return net.TCPAddrFromAddrPort(ap)
}

// TestSharedAddressesHeldToTheOverallCapOnly: a trusted proxy speaks for
// many clients, so its connections pass the per-address cap; another
// address is still held to it, and the overall cap holds for both.
func TestSharedAddressesHeldToTheOverallCapOnly(t *testing.T) {
	t.Parallel()
	l, conns := acceptAll(t, Config{Max: 4, MaxPerIP: 1, FirstByteTimeout: -1, Shared: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	accepted := func(src string) {
		t.Helper()
		dialFrom(t, src, l.Addr())
		select {
		case <-conns:
		case <-time.After(5 * time.Second):
			t.Fatalf("a connection from %s within the caps was not accepted", src)
		}
	}
	for range 3 {
		accepted("127.0.0.2")
	}
	accepted("127.0.0.3")
	for _, src := range []string{"127.0.0.3", "127.0.0.2"} { // per address, then overall
		c := dialFrom(t, src, l.Addr())
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection from %s over a cap: read %v, want it closed", src, err)
		}
	}
	if got, want := l.Open(), 4; got != want {
		t.Errorf("open %d, want %d", got, want)
	}
}
