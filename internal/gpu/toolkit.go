package gpu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MinToolkitVersion is the oldest NVIDIA Container Toolkit a GPU job may run
// on: older ones let a container reach the host filesystem (CVE-2025-23359;
// the floor before it was 1.16.2, for CVE-2024-0132).
const MinToolkitVersion = "1.17.4"

const toolkitCVE = "CVE-2025-23359"

// Errors from CheckToolkit; either one fails the security check.
var (
	ErrToolkitTooOld     = errors.New("gpu: nvidia-container-toolkit too old")
	ErrBadToolkitVersion = errors.New("gpu: unreadable nvidia-container-toolkit version")
)

// CheckToolkit reports whether version (as ToolkitVersion returns it) is at
// least MinToolkitVersion. It accepts "1.17.4", "v1.17.4", "1.17" (patch 0)
// and pre-releases such as "1.17.4-rc.1", which count as older than the
// release, as in semver.
func CheckToolkit(version string) error {
	got, err := parseVersion(version)
	if err != nil {
		return fmt.Errorf("%w %q: %v; need >= %s (%s)", ErrBadToolkitVersion, clip(version, 64), err, MinToolkitVersion, toolkitCVE)
	}
	if got.less(minToolkit) {
		return fmt.Errorf("%w: have %s, need >= %s (%s)", ErrToolkitTooOld, version, MinToolkitVersion, toolkitCVE)
	}
	return nil
}

// minToolkit is MinToolkitVersion parsed; a typo in the constant fails at init.
var minToolkit = func() version {
	v, err := parseVersion(MinToolkitVersion)
	if err != nil {
		panic("gpu: MinToolkitVersion does not parse: " + err.Error())
	}
	return v
}()

type version struct {
	core       [3]int
	prerelease bool
}

func (v version) less(w version) bool {
	for i := range v.core {
		if v.core[i] != w.core[i] {
			return v.core[i] < w.core[i]
		}
	}
	return v.prerelease && !w.prerelease
}

func parseVersion(s string) (version, error) {
	var v version
	core, pre, hasPre := strings.Cut(strings.TrimPrefix(s, "v"), "-")
	if hasPre && pre == "" {
		return v, errors.New("empty pre-release after '-'")
	}
	v.prerelease = hasPre
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, errors.New("want MAJOR.MINOR or MAJOR.MINOR.PATCH")
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return v, fmt.Errorf("component %q is not a number (no signs or leading zeros)", clip(p, 16))
		}
		v.core[i] = n
	}
	return v, nil
}
