package chain

import "errors"

// Errors that mirror subtensor's own (reference/chain.md §3.2). Backends return
// them wrapped with details, so test them with errors.Is. Each message names
// the chain error and what to do about it.
var (
	ErrNotRegistered = errors.New("chain: HotKeyNotRegisteredInSubNet: the hotkey is not registered on this subnet; " +
		"register it (btcli subnets register) or check the hotkey and netuid")
	ErrNotEnoughStake = errors.New("chain: NotEnoughStakeToSetWeights: the hotkey's stake is below the chain's StakeThreshold; " +
		"add stake to the hotkey before setting weights")
	ErrSettingWeightsTooFast = errors.New("chain: SettingWeightsTooFast: weights were set fewer than WeightsRateLimit blocks ago; " +
		"wait until the rate limit has passed and retry")
	ErrNoValidatorPermit = errors.New("chain: NeuronNoValidatorPermit: the hotkey holds no validator permit; " +
		"permits go to the top MaxValidators neurons by stake at each epoch, so add stake and wait for the next epoch")
	ErrIncorrectWeightVersionKey = errors.New("chain: IncorrectWeightVersionKey: version_key is below the subnet's WeightsVersionKey; " +
		"upgrade, or configure a version key of at least the subnet's")
	ErrWeightVecLengthIsLow = errors.New("chain: WeightVecLengthIsLow: fewer non-zero weights than min(MinAllowedWeights, subnet size); " +
		"give weight to more neurons")
	ErrUIDVecContainInvalidOne = errors.New("chain: UidVecContainInvalidOne: a uid in the weights is not registered on the subnet; " +
		"translate hotkeys to uids at the current block")
	ErrDuplicateUIDs     = errors.New("chain: DuplicateUids: a uid appears twice in the weights; send each uid once")
	ErrMaxWeightExceeded = errors.New("chain: MaxWeightExceeded: the largest weight's share of the total is above MaxWeightsLimit; " +
		"spread the weights more evenly")
	ErrCommitRevealEnabled = errors.New("chain: CommitRevealEnabled: the subnet uses commit-reveal, so weights cannot be set directly; " +
		"commit them instead")
	ErrCommitRevealDisabled = errors.New("chain: CommitRevealDisabled: the subnet does not use commit-reveal, so weights cannot be committed; " +
		"set them directly instead")
	ErrCommittingWeightsTooFast = errors.New("chain: CommittingWeightsTooFast: weights were committed fewer than WeightsRateLimit blocks ago; " +
		"wait until the rate limit has passed and retry")
	ErrTooManyUnrevealedCommits = errors.New("chain: TooManyUnrevealedCommits: the hotkey already has 10 unrevealed weight commits; " +
		"wait for the earlier commits to be revealed")
	ErrServingRateLimitExceeded = errors.New("chain: ServingRateLimitExceeded: the axon was served fewer than ServingRateLimit blocks ago; " +
		"wait until the rate limit has passed, or skip the call when the address has not changed")
	ErrInvalidIPAddress = errors.New("chain: InvalidIpAddress: the axon ip is missing or a loopback address (127.0.0.1, ::1); " +
		"announce an address other neurons can reach (a LAN address or 127.0.0.2 for local stacks)")
	ErrInvalidPort     = errors.New("chain: InvalidPort: the axon port is 0; announce the port the server listens on")
	ErrSubnetNotExists = errors.New("chain: SubnetNotExists: no subnet with this netuid; check the configured netuid")

	// ErrCommitmentTooLarge is horde's limit, not the chain's: a commitment is
	// at most MaxCommitmentBytes.
	ErrCommitmentTooLarge = errors.New("chain: commitment too large: a commitment is at most 128 bytes; " +
		"shorten the data other than the manifest envelope")
	// ErrInvalidWeights reports a weight that is negative, NaN or infinite.
	ErrInvalidWeights = errors.New("chain: invalid weights: every weight must be a finite number >= 0; fix the scores before setting weights")

	// ErrServeAxonUnsupported reports a backend that cannot announce an axon: Pylon has no
	// serve_axon, so the operator announces it with btcli (the wrapped error names the
	// command).
	ErrServeAxonUnsupported = errors.New("chain: serve_axon is not supported by this backend (Pylon cannot sign it); " +
		"announce the axon with btcli")

	// ErrNotSupported reports a call the backend (or its version) does not offer.
	ErrNotSupported = errors.New("chain: not supported by this backend or its version")

	// ErrUnknownBlock reports a block the backend does not have: pruned from a
	// lite node's state (read it from an archive node) or not produced yet.
	ErrUnknownBlock = errors.New("chain: unknown block: the node has no state for this block; " +
		"use an archive node for old blocks, or wait for a future one")
	// ErrUnavailable reports a backend that cannot be reached or answered
	// with a transport error; the call may be retried.
	ErrUnavailable = errors.New("chain: backend unavailable: the chain node or Pylon did not answer; " +
		"check that it runs and is reachable, then retry")
)

// Retryable reports whether err is a condition that passes with time, so the
// same call may succeed later unchanged: rate limits, pending commits and an
// unavailable backend.
func Retryable(err error) bool {
	for _, e := range []error{ErrUnavailable, ErrSettingWeightsTooFast, ErrCommittingWeightsTooFast,
		ErrServingRateLimitExceeded, ErrTooManyUnrevealedCommits} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
