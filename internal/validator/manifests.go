package validator

import (
	"slices"
	"sync"
	"time"

	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/protocol"
)

// ManifestChangeInterval is how often a miner's manifest change is honoured: at most one per
// 2 hours (mission rule 10). A change inside the window is ignored and logged; the honoured
// manifest stays until the window has passed, and then becomes the miner's latest
// announcement.
const ManifestChangeInterval = 2 * time.Hour

// MinerManifest is what the validator knows of one miner's manifest.
type MinerManifest struct {
	Miner string
	// Honoured is the manifest routing uses; HonouredAt is when it was taken.
	Honoured   protocol.Manifest
	HonouredAt time.Time
	// Announced is the miner's latest announcement; Ignored counts announcements that
	// differed from Honoured inside the window, LastIgnored the latest of them.
	Announced   protocol.Manifest
	AnnouncedAt time.Time
	Ignored     int
	LastIgnored time.Time
}

// manifestBook keeps each miner's honoured manifest under the 2-hour rule.
type manifestBook struct {
	mu     sync.Mutex
	miners map[string]*MinerManifest
	// clock, when set, lets readers see an ignored change honoured once its window has
	// passed (catchUpLocked); nil leaves that to the miner's next announcement.
	clock clock.Clock
}

// catchUpLocked honours mm's latest announcement once the window since the honoured one has
// passed (strictly before now: an announcement at the window's very end is announce's to
// judge), as of the window's end. A miner announces only when it connects and when its
// manifest changes, so without this a change announced inside the window would never be
// honoured: the miner does not announce it again.
func catchUpLocked(mm *MinerManifest, now time.Time) {
	open := mm.HonouredAt.Add(ManifestChangeInterval)
	if sameManifest(mm.Announced, mm.Honoured) || !now.After(open) {
		return
	}
	mm.Honoured, mm.HonouredAt = slices.Clone(mm.Announced), open
	if mm.AnnouncedAt.After(open) {
		mm.HonouredAt = mm.AnnouncedAt
	}
}

// catchUpAllLocked applies catchUpLocked to every miner at the book's clock.
func (b *manifestBook) catchUpAllLocked() {
	if b.clock == nil {
		return
	}
	now := b.clock.Now()
	for _, mm := range b.miners {
		catchUpLocked(mm, now)
	}
}

// announce records miner's manifest at now and returns whether a change was ignored.
func (b *manifestBook) announce(miner string, m protocol.Manifest, now time.Time) (ignored bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.miners == nil {
		b.miners = map[string]*MinerManifest{}
	}
	mm := b.miners[miner]
	if mm == nil {
		b.miners[miner] = &MinerManifest{Miner: miner, Honoured: slices.Clone(m), HonouredAt: now, Announced: slices.Clone(m), AnnouncedAt: now}
		return false
	}
	catchUpLocked(mm, now) // a change ignored earlier counts from its window's end
	mm.Announced, mm.AnnouncedAt = slices.Clone(m), now
	if sameManifest(m, mm.Honoured) {
		return false
	}
	if now.Sub(mm.HonouredAt) < ManifestChangeInterval {
		mm.Ignored++
		mm.LastIgnored = now
		return true
	}
	mm.Honoured, mm.HonouredAt = slices.Clone(m), now
	return false
}

// honoured returns miner's honoured manifest; ok is false before its first announcement.
func (b *manifestBook) honoured(miner string) (protocol.Manifest, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	mm := b.miners[miner]
	if mm == nil {
		return nil, false
	}
	if b.clock != nil {
		catchUpLocked(mm, b.clock.Now())
	}
	return mm.Honoured, true
}

func (b *manifestBook) all() []MinerManifest {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.catchUpAllLocked()
	out := make([]MinerManifest, 0, len(b.miners))
	for _, mm := range b.miners {
		c := *mm
		c.Honoured, c.Announced = slices.Clone(mm.Honoured), slices.Clone(mm.Announced)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b MinerManifest) int {
		switch {
		case a.Miner < b.Miner:
			return -1
		case a.Miner > b.Miner:
			return 1
		}
		return 0
	})
	return out
}

func sameManifest(a, b protocol.Manifest) bool {
	if len(a) != len(b) {
		return false
	}
	for _, e := range a {
		if b.Count(e.Class) != e.Count {
			return false
		}
	}
	return true
}

// Manifests returns what the validator knows of every miner's manifest, by miner.
func (v *Validator) Manifests() []MinerManifest { return v.manifests.all() }
