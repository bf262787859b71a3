package docker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/system"

	"github.com/computehorde/horde/internal/executor/docker"
)

func TestCheckSecurityDecision(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []string
		secure bool
		modes  []string
	}{
		{"seccomp default", []string{"name=seccomp,profile=default"}, true, nil},
		{"seccomp builtin", []string{"name=seccomp,profile=builtin", "name=cgroupns"}, true, nil},
		{"seccomp custom profile", []string{"name=seccomp,profile=/etc/docker/seccomp.json"}, true, nil},
		{"apparmor only", []string{"name=apparmor"}, true, nil},
		{"selinux only", []string{"name=selinux"}, true, nil},
		{"old daemon format", []string{"apparmor", "seccomp"}, true, nil},
		{"rootless with seccomp", []string{"name=seccomp,profile=default", "name=rootless"}, true, []string{"rootless"}},
		{"userns with apparmor", []string{"name=apparmor", "name=userns"}, true, []string{"userns"}},
		{"nothing", nil, false, nil},
		{"seccomp unconfined", []string{"name=seccomp,profile=unconfined"}, false, nil},
		{"only rootless", []string{"name=rootless", "name=cgroupns"}, false, []string{"rootless"}},
		{"unreadable", []string{"name=seccomp,profile"}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modes, err := docker.CheckEngineSecurity(system.Info{SecurityOptions: tc.opts})
			if (err == nil) != tc.secure {
				t.Fatalf("secure = %v, want %v (err %v)", err == nil, tc.secure, err)
			}
			if err != nil && !strings.Contains(err.Error(), "CVE-2022-0492") && !strings.Contains(err.Error(), "cannot read its security options") {
				t.Errorf("error does not name the cause: %v", err)
			}
			if strings.Join(modes, ",") != strings.Join(tc.modes, ",") {
				t.Errorf("modes %v, want %v", modes, tc.modes)
			}
		})
	}
}

func TestCheckSecurityEngine(t *testing.T) {
	rt := newRuntime(t)
	for range 2 { // the second call answers from the cached Info
		if err := rt.CheckSecurity(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
