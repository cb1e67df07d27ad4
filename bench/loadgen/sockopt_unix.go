//go:build unix

package loadgen

import "syscall"

// setRcvBuf sets SO_RCVBUF on a socket before it connects; a socket is a
// file descriptor here.
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
