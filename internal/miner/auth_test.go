package miner

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestAuthFreshnessWindow: an auth message is fresh for AuthMaxAge either side of the miner's
// time, and while it is fresh its signature opens one connection only. The time is a synctest
// bubble's, so the window's edges are exact and nothing waits.
func TestAuthFreshnessWindow(t *testing.T) {
	alice, bob := mustKey(t, "//Alice"), mustKey(t, "//Bob")
	synctest.Test(t, func(t *testing.T) {
		m := &Miner{cfg: Config{AuthMaxAge: 10 * time.Second}, hotkey: bob.SS58(), replays: newReplayCache()}
		h := harness{bob: bob}
		check := func(what string, sentAgo time.Duration, want error) {
			t.Helper()
			if err := m.checkAuth(alice.SS58(), h.authMsg(alice, time.Now().Add(-sentAgo))); !errors.Is(err, want) {
				t.Errorf("%s: checkAuth = %v, want %v", what, err, want)
			}
		}
		check("sent now", 0, nil)
		check("sent at the window's start", 10*time.Second, nil)
		check("sent at the window's end", -10*time.Second, nil)
		check("sent before the window", 11*time.Second, errAuthStale)
		check("sent after the window", -11*time.Second, errAuthStale)

		replayed := h.authMsg(alice, time.Now())
		if err := m.checkAuth(alice.SS58(), replayed); err != nil {
			t.Fatalf("first use: %v", err)
		}
		time.Sleep(10 * time.Second)
		if err := m.checkAuth(alice.SS58(), replayed); !errors.Is(err, errAuthReplayed) {
			t.Errorf("replayed inside the window: checkAuth = %v, want %v", err, errAuthReplayed)
		}
		time.Sleep(time.Second)
		if err := m.checkAuth(alice.SS58(), replayed); !errors.Is(err, errAuthStale) {
			t.Errorf("replayed after the window: checkAuth = %v, want %v", err, errAuthStale)
		}
		// A signature leaves the replay cache once its window has passed: after the last
		// window, a fresh auth finds only itself there.
		time.Sleep(10 * time.Second)
		check("sent after every earlier window", 0, nil)
		if n := len(m.replays.seen); n != 1 {
			t.Errorf("replay cache holds %d signatures, want 1", n)
		}
	})
}
