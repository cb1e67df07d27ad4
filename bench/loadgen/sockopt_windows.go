package loadgen

import "syscall"

// setRcvBuf sets SO_RCVBUF on a socket before it connects; Winsock names a
// socket by a handle, not a file descriptor.
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
