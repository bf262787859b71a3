package chain

import (
	"math"
	"testing"
)

func TestEpochBounds(t *testing.T) {
	tests := []struct {
		name       string
		block      uint64
		netuid     NetUID
		tempo      uint16
		start, end uint64
		index      uint64
		cycleStart uint64
		cycleEnd   uint64
	}{
		// netuid 12, tempo 360: epochs start at blocks b with b+14 ≡ 0 (mod 361).
		{"genesis block, epoch begins before 0", 0, 12, 360, 0, 347, 0, 0, 708},
		{"last block of first epoch", 346, 12, 360, 0, 347, 0, 0, 708},
		{"first block of an epoch", 347, 12, 360, 347, 708, 1, 0, 708},
		{"inside second epoch", 500, 12, 360, 347, 708, 1, 0, 708},
		{"first block of a cycle", 708, 12, 360, 708, 1069, 2, 708, 1430},
		{"second epoch of a cycle", 1100, 12, 360, 1069, 1430, 3, 708, 1430},
		{"validator.md example B=1844", 1844, 12, 360, 1791, 2152, 5, 1430, 2152},
		{"netuid 0", 359, 0, 360, 359, 720, 1, 0, 720},
		{"netuid 0 before", 358, 0, 360, 0, 359, 0, 0, 720},
		{"tempo 10 netuid 1", 8, 1, 10, 8, 19, 1, 0, 19},
		{"tempo 10 netuid 1 block 7", 7, 1, 10, 0, 8, 0, 0, 19},
		{"tempo 10 netuid 1 block 19", 19, 1, 10, 19, 30, 2, 19, 41},
		// netuid larger than tempo: the epoch at block 0 already has index > 0.
		{"netuid above tempo", 0, 400, 360, 0, 320, 1, 0, 681},
		{"netuid above tempo, next cycle", 700, 400, 360, 681, 1042, 3, 681, 1403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e := EpochBounds(tt.block, tt.netuid, tt.tempo)
			if s != tt.start || e != tt.end {
				t.Errorf("EpochBounds(%d, %d, %d) = [%d, %d), want [%d, %d)", tt.block, tt.netuid, tt.tempo, s, e, tt.start, tt.end)
			}
			if got := EpochIndex(tt.block, tt.netuid, tt.tempo); got != tt.index {
				t.Errorf("EpochIndex = %d, want %d", got, tt.index)
			}
			if got := EpochStart(tt.index, tt.netuid, tt.tempo); got != tt.start {
				t.Errorf("EpochStart(%d) = %d, want %d", tt.index, got, tt.start)
			}
			cs, ce := CycleBounds(tt.block, tt.netuid, tt.tempo)
			if cs != tt.cycleStart || ce != tt.cycleEnd {
				t.Errorf("CycleBounds = [%d, %d), want [%d, %d)", cs, ce, tt.cycleStart, tt.cycleEnd)
			}
		})
	}
}

// TestEpochBoundsMatchesUpstream checks every block of a few epochs against
// a direct transcription of upstream's get_epoch_containing_block.
func TestEpochBoundsMatchesUpstream(t *testing.T) {
	upstream := func(block, netuid, tempo int64) (int64, int64) {
		interval := tempo + 1
		next := block + tempo - (block+netuid+1)%interval
		if next == block {
			return block, block + interval
		}
		return next - interval, next
	}
	for _, netuid := range []NetUID{0, 1, 12, 64} {
		for _, tempo := range []uint16{1, 10, 99, 360} {
			for b := uint64(0); b < 3*uint64(tempo)+10; b++ {
				ws, we := upstream(int64(b), int64(netuid), int64(tempo))
				s, e := EpochBounds(b, netuid, tempo)
				if int64(s) != max(ws, 0) || int64(e) != we {
					t.Fatalf("netuid %d tempo %d block %d: got [%d, %d), upstream [%d, %d)", netuid, tempo, b, s, e, ws, we)
				}
			}
		}
	}
}

func TestEpochTempoZero(t *testing.T) {
	s, e := EpochBounds(1234, 12, 0)
	if s != 0 || e != math.MaxUint64 {
		t.Errorf("EpochBounds with tempo 0 = [%d, %d), want [0, MaxUint64)", s, e)
	}
	if got := EpochIndex(1234, 12, 0); got != 0 {
		t.Errorf("EpochIndex with tempo 0 = %d, want 0", got)
	}
}
