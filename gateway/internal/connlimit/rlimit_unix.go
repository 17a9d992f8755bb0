//go:build unix

package connlimit

import "syscall"

// DefaultMax is the default overall cap: three quarters of the process's
// file-descriptor limit less a reserve for upstream connections, Kafka and
// files, between 64 and 10000.
func DefaultMax() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	n := (int64(rl.Cur) - 128) * 3 / 4
	return int(min(max(n, 64), 10000))
}
