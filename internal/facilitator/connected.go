package facilitator

import (
	"slices"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// Connected returns the validators whose channel is up with a fresh heartbeat, by hotkey,
// each with the free executors per class it last reported less the jobs sent to it since
// (nil for one that never reported, as upstream validators do not). `horde dev` waits on it
// before it calls the subnet ready.
func (f *Facilitator) Connected() map[string]protocol.Manifest {
	h := f.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]protocol.Manifest, len(h.conns))
	for hotkey, c := range h.conns {
		if time.Since(c.beat) >= DefaultHeartbeatFreshness {
			continue
		}
		var m protocol.Manifest
		if free, ok := h.free[hotkey]; ok {
			m = protocol.Manifest{}
			for class, n := range free {
				m = append(m, protocol.ManifestEntry{Class: class, Count: n})
			}
			slices.SortFunc(m, func(a, b protocol.ManifestEntry) int { return strings.Compare(string(a.Class), string(b.Class)) })
		}
		out[hotkey] = m
	}
	return out
}
