package pgtest

import "syscall"

// procAttr runs a child as the given user. The server (daemon) also gets its own process
// group, so a terminal's Ctrl-C reaches only `go test`, and SIGQUIT (immediate shutdown)
// when the test process dies.
func procAttr(as creds, daemon bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{}
	if as.set {
		a.Credential = &syscall.Credential{Uid: as.uid, Gid: as.gid}
	}
	if daemon {
		a.Setpgid = true
		a.Pdeathsig = syscall.SIGQUIT
	}
	return a
}
