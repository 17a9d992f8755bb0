//go:build unix

package upstream

import (
	"net"
	"syscall"
)

// alive peeks at an idle connection without blocking: it is alive when
// there is nothing to read yet. End of stream (the server closed it), an
// error, or unexpected bytes mean it must not carry a request.
func alive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true // TLS: the record layer hides the socket; trust it.
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // Never wait for readiness.
	})
	return err == nil && ok
}
