package chain

import "math"

// Epochs follow subtensor's legacy rule, which Pylon, turbobt and upstream
// ComputeHorde use (reference/protocol.md §12): the epoch step runs at every
// block b with (b + netuid + 1) mod (tempo + 1) == tempo, and an epoch is the
// tempo+1 blocks from one step up to the next. The newest subtensor source
// can move epochs (owner-triggered, LastEpochBlock-based); a backend that can
// ask the chain should prefer its answer.
//
// With tempo 0 the chain never runs epochs: every function treats the whole
// chain as one epoch.

// EpochBounds returns the epoch containing block as the half-open range
// [start, end). The first epoch of a chain begins before block 0; its start
// is reported as 0.
func EpochBounds(block uint64, netuid NetUID, tempo uint16) (start, end uint64) {
	if tempo == 0 {
		return 0, math.MaxUint64
	}
	s := epochStart(EpochIndex(block, netuid, tempo), netuid, tempo)
	return uint64(max(s, 0)), uint64(s + int64(tempo) + 1)
}

// EpochIndex numbers epochs: it grows by one at each block where an epoch
// starts. (The chain's get_epoch_index is one block behind: it increases on
// the block after the epoch step.)
func EpochIndex(block uint64, netuid NetUID, tempo uint16) uint64 {
	if tempo == 0 {
		return 0
	}
	return (block + uint64(netuid) + 2) / (uint64(tempo) + 1)
}

// EpochStart returns the first block of the epoch numbered index
// (see [EpochIndex]); 0 for an epoch that begins before block 0.
func EpochStart(index uint64, netuid NetUID, tempo uint16) uint64 {
	if tempo == 0 {
		return 0
	}
	return uint64(max(epochStart(index, netuid, tempo), 0))
}

// epochStart is EpochStart without the clamp at 0.
func epochStart(index uint64, netuid NetUID, tempo uint16) int64 {
	return int64(index)*(int64(tempo)+1) - int64(netuid) - 2
}

// CycleBounds returns the ComputeHorde cycle containing block as [start, end):
// two consecutive epochs, the first of which is an even number of epochs
// after the epoch containing block 0 (722 blocks with tempo 360). A start
// before block 0 is reported as 0.
func CycleBounds(block uint64, netuid NetUID, tempo uint16) (start, end uint64) {
	if tempo == 0 {
		return 0, math.MaxUint64
	}
	first := EpochIndex(0, netuid, tempo)
	k := EpochIndex(block, netuid, tempo)
	if (k-first)%2 == 1 {
		k--
	}
	s := epochStart(k, netuid, tempo)
	return uint64(max(s, 0)), uint64(s + 2*(int64(tempo)+1))
}
