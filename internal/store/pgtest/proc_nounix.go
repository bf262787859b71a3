//go:build !unix

package pgtest

import "syscall"

// procAttr: no users to switch to and no parent-death signal here.
func procAttr(as creds, daemon bool) *syscall.SysProcAttr { return nil }

// alive: unknown here, so nothing is swept.
func alive(pid int) bool { return true }
