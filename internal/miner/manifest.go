package miner

// The miner's manifest: profitability (mission rule 7) and the 2-hour manifest rule (rule
// 10), miner side, plus the manifest's on-chain commitment.
//
// The capacity manifest is Config.Manifest: the executors the miner has, per class. The
// offered manifest is what it announces (V0ExecutorManifestRequest) and commits on chain
// (`<M:…>`, package hwclass): the capacity minus the classes that do not pay for
// themselves. A class is left out when the best reward rate validators publish for it
// (V0ClassValuesMessage: RewardRate × RelativeValue × Multiplier, per executor-hour) is
// below the miner's cost for it (Config.ClassCosts, per executor-hour, same unit). A class
// with no cost configured is always offered; a class with a cost but no published rate is
// offered too, as nothing shows it loses money.
//
// Which rates count: a validator's latest V0ClassValuesMessage counts while it is
// connected, and for ClassValuesMaxAge after the later of that message and its
// disconnection, so that the manifest does not flap when validators reconnect.
//
// Validators honour at most one manifest change per ManifestChangeInterval, so the miner
// makes at most one: a change wanted inside the window is held (logged once) and made when
// the window opens, if it is still wanted then. The manifest the miner starts with counts
// as a change at start time, unless Config.ManifestStatePath holds the last change from an
// earlier run, whose offered manifest and window are then kept.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/computehorde/horde/internal/chain"
	"github.com/computehorde/horde/internal/clock"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/protocol"
)

const (
	// ManifestChangeInterval is the 2-hour manifest rule: the offered manifest changes at
	// most once per interval.
	ManifestChangeInterval = 2 * time.Hour
	// ClassValuesMaxAge is how long a validator's published rates count once it has
	// disconnected (or since its last message, whichever is later): two mainnet tempos
	// (2 × 360 blocks × 12 s).
	ClassValuesMaxAge = 2 * 72 * time.Minute
	// manifestRecheck is how often RunManifest looks again without being woken: stale
	// rates expire and the commitment on chain is checked, as upstream's miner does every
	// 5 minutes.
	manifestRecheck = 5 * time.Minute
)

// ManifestStatus is the miner's manifest as the admin panel and `horde miner status` show it.
type ManifestStatus struct {
	Capacity protocol.Manifest // executors per class (Config.Manifest)
	Offered  protocol.Manifest // what validators are told and the chain holds
	Classes  []ClassOffer      // one per capacity class, in capacity order
	// LastChange is when the offered manifest last changed (or the miner started, if
	// that was later and nothing was persisted); NextChangeAllowed is LastChange plus
	// ManifestChangeInterval.
	LastChange, NextChangeAllowed time.Time
	// Pending is the manifest the rules want but the 2-hour rule holds back until
	// NextChangeAllowed; nil when none is held.
	Pending protocol.Manifest
	// Commitment is the miner's commitment as last read from or written to the chain
	// ("" before the first); CommitmentError is why the last attempt to check or write it
	// failed ("" when it succeeded).
	Commitment, CommitmentError string
}

// ClassOffer is one class's profitability.
type ClassOffer struct {
	Class    protocol.ExecutorClass
	Capacity int
	Offered  bool // in the offered manifest now
	Wanted   bool // what the profitability rule wants now (differs from Offered while held)
	// Cost is Config.ClassCosts' entry, if HasCost.
	Cost    float64
	HasCost bool
	// BestRate is the best reward per executor-hour among the counted validators, and
	// BestValidator the hotkey publishing it, if HasRate.
	BestRate      float64
	HasRate       bool
	BestValidator string
}

// validatorRates is one validator's latest published rates.
type validatorRates struct {
	rates map[protocol.ExecutorClass]float64 // reward per executor-hour
	seen  time.Time                          // last message, or disconnection if later
	conns int                                // open authenticated connections
}

// manifestManager keeps the offered manifest. Its offered pointer is read without locks
// by Miner.manifest and Miner.capacity.
type manifestManager struct {
	capacity  protocol.Manifest
	costs     map[protocol.ExecutorClass]float64
	clock     clock.Clock
	statePath string
	log       *slog.Logger

	offered atomic.Pointer[protocol.V0ExecutorManifestRequest] // never mutated once stored
	// available is what the executor manager can run now (SetCapacity); nil means capacity.
	available atomic.Pointer[protocol.V0ExecutorManifestRequest]
	kick      chan struct{} // wakes RunManifest; buffered 1

	mu          sync.Mutex
	validators  map[string]*validatorRates // by hotkey
	sessions    map[*validatorSession]struct{}
	lastChange  time.Time
	pending     protocol.Manifest // held change; meaningful when hasPending
	hasPending  bool
	commitment  string    // ours on chain, as last read or written
	commitErr   string    // why the last check or write failed
	submitted   string    // the last commitment written, until seen on chain
	submittedAt time.Time // when it was written

	onCommit func(data string) // tests: called after each commitment write
}

func newManifestManager(cfg *Config, log *slog.Logger) *manifestManager {
	o := &manifestManager{
		capacity:   slices.Clone(cfg.Manifest),
		costs:      maps.Clone(cfg.ClassCosts),
		clock:      cfg.Clock,
		statePath:  cfg.ManifestStatePath,
		log:        log,
		kick:       make(chan struct{}, 1),
		validators: map[string]*validatorRates{},
		sessions:   map[*validatorSession]struct{}{},
	}
	if o.clock == nil {
		o.clock = clock.Real{}
	}
	now := o.clock.Now()
	st := o.loadState()
	if st != nil {
		for hk, v := range st.Validators {
			o.validators[hk] = &validatorRates{rates: v.Rates, seen: v.Seen}
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expireLocked(now)
	want := offerFor(o.capacity, o.costs, o.bestLocked(now))
	offered, last := want, now
	if st != nil {
		saved := st.offeredManifest()
		kept := keepClasses(o.capacity, saved)
		switch {
		case sameManifest(kept, saved) && now.Before(st.LastChange.Add(ManifestChangeInterval)):
			// Validators honour the manifest of the earlier run until its window opens.
			offered, last = kept, st.LastChange
		case sameManifest(want, saved):
			last = st.LastChange // nothing changed since
		}
		if last.After(now) {
			last = now // the clock went back; do not wait longer than the rule asks
		}
	}
	o.offered.Store(&protocol.V0ExecutorManifestRequest{Manifest: offered})
	o.lastChange = last
	o.evaluateLocked(now) // holds want if it differs
	o.saveLocked()
	o.log.Info("offered manifest", "offered", offered, "capacity", o.capacity, "next_change_allowed", last.Add(ManifestChangeInterval))
	return o
}

// offerFor returns capacity without the classes whose best published rate is below their
// cost. A class without a cost, or without a published rate, stays.
func offerFor(capacity protocol.Manifest, costs, best map[protocol.ExecutorClass]float64) protocol.Manifest {
	out := protocol.Manifest{}
	for _, e := range capacity {
		cost, hasCost := costs[e.Class]
		rate, hasRate := best[e.Class]
		if hasCost && hasRate && rate < cost {
			continue
		}
		out = append(out, e)
	}
	return out
}

func hasClass(m protocol.Manifest, class protocol.ExecutorClass) bool {
	return slices.ContainsFunc(m, func(e protocol.ManifestEntry) bool { return e.Class == class })
}

// keepClasses returns the entries of capacity whose class is in classes.
func keepClasses(capacity, classes protocol.Manifest) protocol.Manifest {
	out := protocol.Manifest{}
	for _, e := range capacity {
		if hasClass(classes, e.Class) {
			out = append(out, e)
		}
	}
	return out
}

// sameManifest reports whether a and b have the same classes and counts, in any order.
func sameManifest(a, b protocol.Manifest) bool {
	if len(a) != len(b) {
		return false
	}
	for _, e := range a {
		if !slices.Contains(b, e) {
			return false
		}
	}
	return true
}

// counted reports whether v's rates count at now.
func (v *validatorRates) counted(now time.Time) bool {
	return v.conns > 0 || now.Sub(v.seen) <= ClassValuesMaxAge
}

// expireLocked forgets the validators whose rates no longer count.
func (o *manifestManager) expireLocked(now time.Time) {
	for hk, v := range o.validators {
		if !v.counted(now) {
			delete(o.validators, hk)
		}
	}
}

// bestLocked returns the best rate per class among the counted validators.
func (o *manifestManager) bestLocked(now time.Time) map[protocol.ExecutorClass]float64 {
	best := map[protocol.ExecutorClass]float64{}
	for _, v := range o.validators {
		if !v.counted(now) {
			continue
		}
		for c, r := range v.rates {
			if b, ok := best[c]; !ok || r > b {
				best[c] = r
			}
		}
	}
	return best
}

// evaluateLocked applies the rules at now. It returns the new offered manifest's message
// when it changed; a change the window does not allow yet is held instead (held true when
// the held change is new, so the caller wakes RunManifest to wait for the window).
func (o *manifestManager) evaluateLocked(now time.Time) (changed *protocol.V0ExecutorManifestRequest, held bool) {
	o.expireLocked(now)
	want := offerFor(o.capacity, o.costs, o.bestLocked(now))
	cur := o.offered.Load().Manifest
	if sameManifest(want, cur) {
		if o.hasPending {
			o.log.Info("held manifest change no longer wanted; the offered manifest stays", "offered", cur)
			o.pending, o.hasPending = nil, false
		}
		return nil, false
	}
	if next := o.lastChange.Add(ManifestChangeInterval); now.Before(next) {
		if o.hasPending && sameManifest(want, o.pending) {
			return nil, false
		}
		o.pending, o.hasPending = want, true
		o.log.Info("manifest change held by the 2-hour rule", "offered", cur, "wanted", want, "applies_at", next)
		return nil, true
	}
	msg := &protocol.V0ExecutorManifestRequest{Manifest: want}
	o.offered.Store(msg)
	o.lastChange = now
	o.pending, o.hasPending = nil, false
	o.log.Info("offered manifest changed", "from", cur, "to", want, "next_change_allowed", now.Add(ManifestChangeInterval))
	return msg, false
}

// settle evaluates the rules now and tells every connected validator a new manifest. It
// reports whether the offered manifest changed, and whether a change is newly held.
func (o *manifestManager) settle() (changed, held bool) {
	o.mu.Lock()
	msg, held := o.evaluateLocked(o.clock.Now())
	var to []*validatorSession
	if msg != nil {
		o.saveLocked()
		to = slices.Collect(maps.Keys(o.sessions))
	}
	o.mu.Unlock()
	for _, s := range to {
		// Each send ends within wsconn.WriteTimeout, and at once when Miner.Close drops
		// the connection.
		go s.send(context.Background(), msg)
	}
	return msg != nil, held
}

func (o *manifestManager) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// classValues records the rates s's validator publishes and applies the rules.
func (o *manifestManager) classValues(s *validatorSession, msg *protocol.V0ClassValuesMessage) {
	rates := map[protocol.ExecutorClass]float64{}
	for class := range msg.ClassValues.All() {
		c := protocol.ExecutorClass(class)
		r, _ := msg.RewardPerHour(c)
		if !c.Valid() || math.IsNaN(r) || math.IsInf(r, 0) {
			continue
		}
		rates[c] = r
	}
	s.log.Debug("validator published class values", "reward_rate", msg.RewardRate, "rates", rates)
	o.mu.Lock()
	v := o.validators[s.hotkey]
	if v == nil {
		v = &validatorRates{}
		o.validators[s.hotkey] = v
	}
	v.rates, v.seen = rates, o.clock.Now()
	v.conns = o.connsLocked(s.hotkey)
	o.saveLocked()
	o.mu.Unlock()
	// RunManifest commits a change, or waits for a held change's window.
	if changed, held := o.settle(); changed || held {
		o.wake()
	}
}

func (o *manifestManager) connsLocked(hotkey string) int {
	n := 0
	for s := range o.sessions {
		if s.hotkey == hotkey {
			n++
		}
	}
	return n
}

// track registers an authenticated validator connection, to be told manifest changes and
// to keep its rates counting; the returned function unregisters it.
func (o *manifestManager) track(s *validatorSession) (untrack func()) {
	o.mu.Lock()
	o.sessions[s] = struct{}{}
	if v := o.validators[s.hotkey]; v != nil {
		v.conns++
	}
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		delete(o.sessions, s)
		if v := o.validators[s.hotkey]; v != nil {
			v.conns = max(v.conns-1, 0)
			if now := o.clock.Now(); now.After(v.seen) {
				v.seen = now
			}
			o.saveLocked()
		}
		o.mu.Unlock()
	}
}

// nextChange returns when the next change is allowed and whether one is held.
func (o *manifestManager) nextChange() (next time.Time, held bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastChange.Add(ManifestChangeInterval), o.hasPending
}

func (o *manifestManager) status() ManifestStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	offered := o.offered.Load().Manifest
	want := offerFor(o.capacity, o.costs, o.bestLocked(now))
	st := ManifestStatus{
		Capacity:          slices.Clone(o.capacity),
		Offered:           slices.Clone(offered),
		LastChange:        o.lastChange,
		NextChangeAllowed: o.lastChange.Add(ManifestChangeInterval),
		Commitment:        o.commitment,
		CommitmentError:   o.commitErr,
	}
	if o.hasPending {
		st.Pending = slices.Clone(o.pending)
	}
	for _, e := range o.capacity {
		c := ClassOffer{Class: e.Class, Capacity: e.Count, Offered: hasClass(offered, e.Class), Wanted: hasClass(want, e.Class)}
		c.Cost, c.HasCost = o.costs[e.Class]
		for hk, v := range o.validators {
			r, ok := v.rates[e.Class]
			if !ok || !v.counted(now) {
				continue
			}
			if !c.HasRate || r > c.BestRate || r == c.BestRate && hk < c.BestValidator {
				c.BestRate, c.HasRate, c.BestValidator = r, true, hk
			}
		}
		st.Classes = append(st.Classes, c)
	}
	return st
}

// ManifestStatus returns the capacity and offered manifests, each class's best published
// rate and cost, and the 2-hour rule's state.
func (m *Miner) ManifestStatus() ManifestStatus { return m.offer.status() }

// NextChangeAllowed returns the earliest time the offered manifest may change again.
func (m *Miner) NextChangeAllowed() time.Time {
	next, _ := m.offer.nextChange()
	return next
}

// RunManifest keeps the offered manifest and its commitment on chain up to date until ctx
// is done; it returns nil. It commits the offered manifest at once (when the chain does
// not hold it already), then whenever it changes, and checks again every 5 minutes; it
// makes a change held by the 2-hour rule once its window opens, and drops rates that no
// longer count. Run it beside the miner's server: without it, held changes wait for the
// next published rates and nothing is committed on chain.
func (m *Miner) RunManifest(ctx context.Context) error {
	o := m.offer
	for {
		o.settle()
		m.commitManifest(ctx)
		next, held := o.nextChange()
		recheck := o.clock.After(manifestRecheck)
		var window <-chan time.Time
		if held {
			window = o.clock.After(next.Sub(o.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.kick:
		case <-recheck:
		case <-window:
		}
	}
}

// commitmentUpdate returns the commitment that puts offered's envelope into current (the
// miner's other data kept, any earlier envelope replaced, the envelope last), and whether
// it differs from current, so that an unchanged commitment is not written again.
func commitmentUpdate(current []byte, offered protocol.Manifest) (data []byte, write bool, err error) {
	merged, err := hwclass.MergeManifest(string(current), offered)
	if err != nil {
		return nil, false, err
	}
	return []byte(merged), merged != string(current), nil
}

// commitManifest writes the offered manifest's envelope into the miner's commitment when
// the chain does not hold it, retrying the write until it lands or ctx ends.
func (m *Miner) commitManifest(ctx context.Context) {
	o := m.offer
	offered := o.offered.Load().Manifest
	hotkey := chain.Hotkey(m.hotkey)
	fail := func(err error) {
		o.mu.Lock()
		o.commitErr = err.Error()
		o.mu.Unlock()
	}
	all, err := m.cfg.Chain.Commitments(ctx, m.cfg.NetUID)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cannot read the miner's commitment; the manifest is committed once the chain answers", "err", err)
			fail(err)
		}
		return
	}
	current := all[hotkey]
	data, write, err := commitmentUpdate(current, offered)
	if err != nil {
		m.log.Error("manifest not committed on chain", "commitment", string(current), "offered", offered, "err", err)
		fail(err)
		return
	}
	now := o.clock.Now()
	o.mu.Lock()
	if !write {
		o.commitment, o.commitErr, o.submitted = string(current), "", ""
		o.mu.Unlock()
		return // on chain already
	}
	if string(data) == o.submitted && now.Sub(o.submittedAt) < manifestRecheck {
		o.mu.Unlock()
		return // written, and waiting for a block to include it
	}
	o.mu.Unlock()
	err = chain.SubmitCommitment(ctx, chain.CommitmentTask{
		Chain: m.cfg.Chain, Hotkey: hotkey, NetUID: m.cfg.NetUID, Data: data,
		Logger: m.log.With("commitment", string(data)),
	})
	if err != nil {
		if ctx.Err() == nil {
			fail(err)
		}
		return
	}
	o.mu.Lock()
	o.commitment, o.commitErr = string(data), ""
	o.submitted, o.submittedAt = string(data), o.clock.Now()
	hook := o.onCommit
	o.mu.Unlock()
	if hook != nil {
		hook(string(data))
	}
}

// manifestState is what ManifestStatePath keeps across restarts.
type manifestState struct {
	LastChange time.Time                  `json:"last_change"`
	Offered    []manifestStateEntry       `json:"offered"`
	Validators map[string]validatorStated `json:"validators,omitempty"`
}

type manifestStateEntry struct {
	Class protocol.ExecutorClass `json:"class"`
	Count int                    `json:"count"`
}

type validatorStated struct {
	Seen  time.Time                          `json:"seen"`
	Rates map[protocol.ExecutorClass]float64 `json:"rates"`
}

func (st *manifestState) offeredManifest() protocol.Manifest {
	m := protocol.Manifest{}
	for _, e := range st.Offered {
		m.Set(e.Class, e.Count)
	}
	return m
}

// loadState reads ManifestStatePath; nil when there is none or it cannot be used.
func (o *manifestManager) loadState() *manifestState {
	if o.statePath == "" {
		return nil
	}
	b, err := os.ReadFile(o.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var st manifestState
	if err == nil {
		err = json.NewDecoder(bytes.NewReader(b)).Decode(&st)
	}
	if err == nil {
		for _, e := range st.Offered {
			if !e.Class.Valid() || e.Count < 0 {
				err = fmt.Errorf("offered class %q with count %d", e.Class, e.Count)
				break
			}
		}
	}
	if err != nil {
		o.log.Warn("manifest state unreadable; starting as if new (the manifest counts as changed now); the file is rewritten",
			"path", o.statePath, "err", err)
		return nil
	}
	for hk, v := range st.Validators {
		for c, r := range v.Rates {
			if !c.Valid() || math.IsNaN(r) || math.IsInf(r, 0) {
				delete(v.Rates, c)
			}
		}
		st.Validators[hk] = v
	}
	return &st
}

// saveLocked writes the state to ManifestStatePath, if set, replacing the file atomically.
// A failure is logged: the miner goes on, and would only restart its window.
func (o *manifestManager) saveLocked() {
	if o.statePath == "" {
		return
	}
	st := manifestState{LastChange: o.lastChange, Validators: map[string]validatorStated{}}
	for _, e := range o.offered.Load().Manifest {
		st.Offered = append(st.Offered, manifestStateEntry{e.Class, e.Count})
	}
	for hk, v := range o.validators {
		st.Validators[hk] = validatorStated{Seen: v.seen, Rates: v.rates}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeFileAtomic(o.statePath, b)
	}
	if err != nil {
		o.log.Warn("cannot save the manifest state; a restart would count as a manifest change", "path", o.statePath, "err", err)
	}
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// SetCapacity replaces the executors the miner has per class, for executor managers whose
// hosts come and go: admission is capped by it at once, and the offered manifest follows it
// under the same rules as a change of rates (at most one change per ManifestChangeInterval;
// a drop inside the window is held while admission already declines what the miner cannot
// run).
func (m *Miner) SetCapacity(c protocol.Manifest) {
	o := m.offer
	o.mu.Lock()
	o.capacity = slices.Clone(c)
	o.available.Store(&protocol.V0ExecutorManifestRequest{Manifest: slices.Clone(c)})
	o.saveLocked()
	o.mu.Unlock()
	if changed, held := o.settle(); changed || held {
		o.wake()
	}
}
