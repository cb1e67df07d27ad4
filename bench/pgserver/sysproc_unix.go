//go:build unix

package pgserver

import (
	"os"
	"syscall"
)

// runAs is who initdb and postgres run as: nobody/nogroup (65534) when the
// harness runs as root, which postgres refuses; nil: the harness's user.
func runAs() (*ids, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return &ids{uid: 65534, gid: 65534}, nil
}

// sysProcAttr runs a process as as, and postgres in a process group of its
// own (newGroup), away from the terminal's Ctrl-C: Close stops it.
func sysProcAttr(as *ids, newGroup bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: newGroup}
	if as != nil {
		a.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid}
	}
	return a
}
