package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/system"
)

// ErrInsecureEngine is returned by CheckSecurity when job containers could escape the engine.
var ErrInsecureEngine = errors.New("docker: insecure engine")

// CheckSecurity fails with ErrInsecureEngine when the engine's containers could escape through
// CVE-2022-0492 (a cgroup v1 release_agent written after unshare and mount): that needs all of
// seccomp (whose default profile blocks the unshare and mount), AppArmor and SELinux to be off.
// Our containers also drop every capability and set no-new-privileges. Rootless mode and user
// namespace remapping are logged. The engine's Info is read once and cached.
func (r *Runtime) CheckSecurity(ctx context.Context) error {
	r.mu.Lock()
	info := r.info
	r.mu.Unlock()
	if info == nil {
		got, err := r.cli.Info(ctx)
		if err != nil {
			return fmt.Errorf("docker: read engine info for the security check: %w", err)
		}
		info = &got
		r.mu.Lock()
		r.info = info
		r.mu.Unlock()
	}
	modes, err := checkEngineSecurity(*info)
	for _, m := range modes {
		r.log.Info("engine isolation mode", "mode", m)
	}
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrInsecureEngine, r.cli.DaemonHost(), err)
	}
	return nil
}

// checkEngineSecurity decides on Info alone. It returns the notable isolation modes (rootless,
// userns) and an error naming the cause when containers are not confined.
func checkEngineSecurity(info system.Info) (modes []string, err error) {
	opts, err := system.DecodeSecurityOptions(info.SecurityOptions)
	if err != nil {
		return nil, fmt.Errorf("cannot read its security options %q: %w", info.SecurityOptions, err)
	}
	confined := false
	for _, o := range opts {
		switch o.Name {
		case "seccomp":
			// A daemon started with --seccomp-profile=unconfined reports seccomp yet applies none.
			if option(o, "profile") != "unconfined" {
				confined = true
			}
		case "apparmor", "selinux":
			confined = true
		case "rootless", "userns":
			modes = append(modes, o.Name)
		}
	}
	if !confined {
		return modes, fmt.Errorf("containers get none of seccomp, AppArmor or SELinux (security options %q), "+
			"so a job could escape through the cgroup release_agent (CVE-2022-0492); "+
			"run dockerd with its default seccomp profile, or enable AppArmor or SELinux", strings.Join(info.SecurityOptions, "; "))
	}
	return modes, nil
}

func option(o system.SecurityOpt, key string) string {
	for _, kv := range o.Options {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}
