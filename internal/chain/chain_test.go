package chain

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestAxonIsServing(t *testing.T) {
	tests := []struct {
		ip   string
		want bool
	}{
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"1.2.3.4", true},
		{"10.0.0.1", true},
		{"2001:db8::1", true},
	}
	for _, tt := range tests {
		var a AxonInfo
		if tt.ip != "" {
			a.IP = netip.MustParseAddr(tt.ip)
		}
		if got := a.IsServing(); got != tt.want {
			t.Errorf("IsServing(%q) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

func TestMetagraphLookups(t *testing.T) {
	m := &Metagraph{Neurons: []Neuron{
		{UID: 0, Hotkey: "a", Stake: 10, ValidatorPermit: true},
		{UID: 1, Hotkey: "b", Stake: 30, ValidatorPermit: true},
		{UID: 3, Hotkey: "c", Stake: 50},
		{UID: 4, Hotkey: "d", Stake: 30, ValidatorPermit: true},
	}}
	if n, ok := m.ByHotkey("c"); !ok || n.UID != 3 {
		t.Errorf("ByHotkey(c) = %v, %v; want uid 3", n, ok)
	}
	if _, ok := m.ByHotkey("zz"); ok {
		t.Error("ByHotkey(zz) found a neuron")
	}
	if n, ok := m.ByUID(4); !ok || n.Hotkey != "d" {
		t.Errorf("ByUID(4) = %v, %v; want d", n, ok)
	}
	if _, ok := m.ByUID(2); ok {
		t.Error("ByUID(2) found a neuron in a gap")
	}
	var got []Hotkey
	for _, v := range m.Validators() {
		got = append(got, v.Hotkey)
	}
	if fmt.Sprint(got) != "[b d a]" {
		t.Errorf("Validators() = %v, want [b d a] (stake desc, uid asc)", got)
	}
}

func TestErrors(t *testing.T) {
	wrapped := fmt.Errorf("%w (last update 5)", ErrSettingWeightsTooFast)
	if !Retryable(wrapped) || !Retryable(fmt.Errorf("x: %w", ErrUnavailable)) {
		t.Error("rate limit and unavailable must be retryable")
	}
	if Retryable(ErrNoValidatorPermit) || Retryable(nil) {
		t.Error("permit error or nil must not be retryable")
	}
	for _, e := range []error{ErrNotRegistered, ErrSettingWeightsTooFast, ErrNoValidatorPermit, ErrIncorrectWeightVersionKey,
		ErrWeightVecLengthIsLow, ErrUIDVecContainInvalidOne, ErrDuplicateUIDs, ErrMaxWeightExceeded, ErrCommitRevealEnabled,
		ErrCommitRevealDisabled, ErrCommittingWeightsTooFast, ErrTooManyUnrevealedCommits, ErrServingRateLimitExceeded,
		ErrInvalidIPAddress, ErrInvalidPort, ErrCommitmentTooLarge, ErrUnknownBlock, ErrUnavailable} {
		if !strings.HasPrefix(e.Error(), "chain: ") || !strings.Contains(e.Error(), ";") {
			t.Errorf("%q: want the chain: prefix and a cause; fix message", e)
		}
		if errors.Unwrap(e) != nil {
			t.Errorf("%q is not a plain sentinel", e)
		}
	}
}
