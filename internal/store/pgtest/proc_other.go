//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs a child as the given user. Without Linux's parent-death signal the server
// is stopped only by Stop (Main).
func procAttr(as creds, daemon bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: daemon}
	if as.set {
		a.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid}
	}
	return a
}
