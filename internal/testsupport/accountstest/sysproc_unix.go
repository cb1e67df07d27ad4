//go:build unix

package accountstest

import "syscall"

func platformSupported() error { return nil }

// sysProcAttr runs initdb and postgres as s.as when set, and postgres in a
// process group of its own (newGroup), away from the terminal's Ctrl-C:
// the test stops it itself.
func (s *Server) sysProcAttr(newGroup bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: newGroup}
	if s.as != nil {
		a.Credential = &syscall.Credential{Uid: s.as.uid, Gid: s.as.gid}
	}
	return a
}
