package docker

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// initKiller signals a container's init process directly, without the engine: the engine's
// kill takes tens of milliseconds, and a job over its disk cap writes on meanwhile. Killing a
// PID namespace's init kills every process in it. The pidfd pins the very process, so a
// signal can never reach another one that reused its PID.
type initKiller struct{ fd int }

// openInitKiller returns a killer for pid, the init process of container cid as the engine
// reports it, or nil when this process cannot be sure it sees that very process: another PID
// namespace than the engine's, no permission, no pidfd support. Callers then use the engine.
func openInitKiller(pid int, cid string) *initKiller {
	if pid <= 0 || cid == "" {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	// The process the fd pins must be in the container's cgroup: in another PID namespace
	// the same number may name an unrelated process. Should it have exited meanwhile, the
	// check reads another process's cgroup and fails, or the signal finds none (ESRCH).
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || !strings.Contains(string(cg), cid) {
		unix.Close(fd)
		return nil
	}
	return &initKiller{fd: fd}
}

// kill sends SIGKILL and reports whether it was delivered; a nil killer does nothing.
func (k *initKiller) kill() bool {
	if k == nil {
		return false
	}
	return unix.PidfdSendSignal(k.fd, unix.SIGKILL, nil, 0) == nil
}

func (k *initKiller) close() {
	if k != nil {
		unix.Close(k.fd)
	}
}
