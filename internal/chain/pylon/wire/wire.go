// Package wire is the JSON of Pylon's REST API, pinned to one release: Pylon service 0.3.0,
// API v1, as upstream ComputeHorde runs it with pylon-client 1.4.0 (reference/chain.md §2.3,
// §7). The Pylon client (chain/pylon) and the simulated chain's server (chain/simserver) both
// speak it through these types, so they cannot drift apart; golden fixtures derived from
// Pylon's own models (testdata) hold the types to what Pylon serializes.
//
// Pylon serializes with pydantic: money-like values are floats in whole TAO/alpha
// (rao / 1e9), the block is an object, neurons are a map keyed by hotkey and validators a
// list. Conversion to and from package chain's types happens here, once, at the edge.
//
// A few paths are not Pylon 0.3.0's: the weights status endpoint of later Pylon releases
// (a client treats its absence as "not supported") and horde's own extensions under
// [HordePrefix], which only `horde chain sim` serves.
package wire

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/computehorde/horde/internal/chain"
)

// Release names the Pylon release this package follows.
const Release = "Pylon service 0.3.0 (API v1, pylon-client 1.4.0)"

// Prefix is the root of Pylon's v1 API.
const Prefix = "/api/v1"

// HordePrefix is the root of horde's extensions, served by `horde chain sim` only.
const HordePrefix = "/horde/v1"

// RaoPerTAO converts Pylon's float amounts to rao.
const RaoPerTAO = 1e9

// Paths, relative to a subnet's base ([SubnetBase]).
const (
	PathLatestNeurons     = "/block/latest/neurons"
	PathRecentNeurons     = "/block/recent/neurons"
	PathLatestValidators  = "/block/latest/validators"
	PathLatestCommitments = "/block/latest/commitments"
	PathOwnCommitment     = "/block/latest/commitments/self" // identity only
	PathWeights           = "/weights"                       // PUT, identity only
	PathCommitments       = "/commitments"                   // POST, identity only
)

// PathNeuronsAt is the metagraph at block n.
func PathNeuronsAt(n uint64) string { return "/block/" + strconv.FormatUint(n, 10) + "/neurons" }

// PathValidatorsAt is the validators at block n.
func PathValidatorsAt(n uint64) string {
	return "/block/" + strconv.FormatUint(n, 10) + "/validators"
}

// PathCommitment is one hotkey's commitment at the latest block.
func PathCommitment(hotkey chain.Hotkey) string { return PathLatestCommitments + "/" + string(hotkey) }

// PathWeightsStatus is the weights status endpoint of later Pylon releases (not 0.3.0):
// whether the identity's weights for the epoch holding block n were submitted, on mechanism 0.
func PathWeightsStatus(n uint64) string {
	return "/mechanism/0/block/" + strconv.FormatUint(n, 10) + "/weights/status"
}

// PathLogin is where a client logs in as identity name.
func PathLogin(name string) string { return Prefix + "/login/identity/" + name }

// SubnetBase is the base path of a subnet's endpoints: open access when identity is empty,
// else the identity's.
func SubnetBase(identity string, netuid chain.NetUID) string {
	if identity == "" {
		return Prefix + "/subnet/" + strconv.Itoa(int(netuid))
	}
	return Prefix + "/identity/" + identity + "/subnet/" + strconv.Itoa(int(netuid))
}

// HyperparamsPath is horde's extension serving a subnet's hyperparameters, which Pylon
// 0.3.0 does not serve.
func HyperparamsPath(netuid chain.NetUID) string {
	return HordePrefix + "/subnet/" + strconv.Itoa(int(netuid)) + "/hyperparams"
}

// Block is Pylon's block: number and 0x-prefixed hash.
type Block struct {
	Number uint64 `json:"number"`
	Hash   string `json:"hash"`
}

// AxonInfo is a neuron's announced address. Protocol is 0 (TCP), 1 (UDP) or 4 (HTTP).
type AxonInfo struct {
	IP       string `json:"ip"`
	Port     uint16 `json:"port"`
	Protocol int    `json:"protocol"`
}

// Stakes are a neuron's stakes, from the subnet's state, in whole alpha/TAO.
type Stakes struct {
	Alpha float64 `json:"alpha"`
	Tao   float64 `json:"tao"`
	Total float64 `json:"total"`
}

// Neuron is one neuron as Pylon serializes it, fields in Pylon's order.
type Neuron struct {
	UID             uint16   `json:"uid"`
	Coldkey         string   `json:"coldkey"`
	Hotkey          string   `json:"hotkey"`
	Active          bool     `json:"active"`
	AxonInfo        AxonInfo `json:"axon_info"`
	Stake           float64  `json:"stake"`
	Rank            float64  `json:"rank"`
	Emission        float64  `json:"emission"`
	Incentive       float64  `json:"incentive"`
	Consensus       float64  `json:"consensus"`
	Trust           float64  `json:"trust"`
	ValidatorTrust  float64  `json:"validator_trust"`
	Dividends       float64  `json:"dividends"`
	LastUpdate      uint64   `json:"last_update"`
	ValidatorPermit bool     `json:"validator_permit"`
	PruningScore    int64    `json:"pruning_score"`
	Stakes          Stakes   `json:"stakes"`
}

// NeuronsResponse answers the neurons endpoints.
type NeuronsResponse struct {
	Block   Block             `json:"block"`
	Neurons map[string]Neuron `json:"neurons"`
}

// ValidatorsResponse answers the validators endpoints: permit holders by total stake,
// highest first.
type ValidatorsResponse struct {
	Block      Block    `json:"block"`
	Validators []Neuron `json:"validators"`
}

// CommitmentsResponse answers the all-commitments endpoint; values are 0x-prefixed hex.
type CommitmentsResponse struct {
	Block       Block             `json:"block"`
	Commitments map[string]string `json:"commitments"`
}

// CommitmentResponse answers the one-hotkey and own commitment endpoints.
type CommitmentResponse struct {
	Block      Block  `json:"block"`
	Hotkey     string `json:"hotkey"`
	Commitment string `json:"commitment"`
}

// LoginRequest is the body of the identity login.
type LoginRequest struct {
	Token string `json:"token"`
}

// LoginResponse tells a client its identity's subnet.
type LoginResponse struct {
	NetUID       chain.NetUID `json:"netuid"`
	IdentityName string       `json:"identity_name"`
}

// WeightsRequest is the body of PUT /weights: hotkey → weight.
type WeightsRequest struct {
	Weights map[string]float64 `json:"weights"`
}

// WeightsResponse is PUT /weights' answer. Pylon answers it at once: the weights are only
// scheduled; Pylon's background job sets or commits them, retrying until the epoch ends.
type WeightsResponse struct {
	Detail string `json:"detail"`
	Count  int    `json:"count"`
}

// WeightsScheduled is WeightsResponse.Detail on success.
const WeightsScheduled = "weights update scheduled"

// WeightsStatusResponse answers the weights status endpoint. Pylon serves only
// WeightsSubmitted; `horde chain sim` adds the state of its background job and the chain's
// last refusal, which Pylon only logs.
type WeightsStatusResponse struct {
	WeightsSubmitted bool `json:"weights_submitted"`
	// Job is the background job's state as Pylon names it: running, completed,
	// tempo_expired or failed; empty when no job ran for that epoch.
	Job string `json:"job,omitempty"`
	// Error is the chain's last refusal of the job's weights, if any.
	Error string `json:"error,omitempty"`
}

// Pylon's weights job states.
const (
	JobRunning      = "running"
	JobCompleted    = "completed"
	JobTempoExpired = "tempo_expired"
	JobFailed       = "failed"
)

// SetCommitmentRequest is the body of POST /commitments.
type SetCommitmentRequest struct {
	Commitment string `json:"commitment"`
}

// DetailResponse is a write's plain answer, and the body of Pylon's errors (with
// StatusCode set; validation errors add Extra).
type DetailResponse struct {
	StatusCode int    `json:"status_code,omitempty"`
	Detail     string `json:"detail"`
	Extra      []struct {
		Message string `json:"message"`
		Key     string `json:"key"`
	} `json:"extra,omitempty"`
}

// CommitmentSet is the detail of a successful POST /commitments.
const CommitmentSet = "Commitment set successfully."

// Hyperparams is horde's hyperparameters extension (not Pylon's): the subnet's values the
// roles act on, with the chain's names.
type Hyperparams struct {
	Tempo                      uint16 `json:"tempo"`
	WeightsRateLimit           uint64 `json:"weights_rate_limit"`
	WeightsVersion             uint64 `json:"weights_version"`
	MaxWeightsLimit            uint16 `json:"max_weights_limit"`
	MinAllowedWeights          uint16 `json:"min_allowed_weights"`
	MaxValidators              uint16 `json:"max_validators"`
	ServingRateLimit           uint64 `json:"serving_rate_limit"`
	CommitRevealWeightsEnabled bool   `json:"commit_reveal_weights_enabled"`
	CommitRevealPeriod         uint64 `json:"commit_reveal_period"`
	ImmunityPeriod             uint16 `json:"immunity_period"`
	StakeThreshold             uint64 `json:"stake_threshold"`
}

// FromHyperparams converts chain's hyperparameters to the extension's JSON.
func FromHyperparams(hp chain.Hyperparams) Hyperparams {
	return Hyperparams{
		Tempo: hp.Tempo, WeightsRateLimit: hp.WeightsRateLimit, WeightsVersion: hp.WeightsVersionKey,
		MaxWeightsLimit: hp.MaxWeightsLimit, MinAllowedWeights: hp.MinAllowedWeights,
		MaxValidators: hp.MaxValidators, ServingRateLimit: hp.ServingRateLimit,
		CommitRevealWeightsEnabled: hp.CommitRevealEnabled, CommitRevealPeriod: hp.RevealPeriodEpochs,
		ImmunityPeriod: hp.ImmunityPeriod, StakeThreshold: hp.StakeThreshold,
	}
}

// ToHyperparams converts the extension's JSON to chain's hyperparameters.
func (h Hyperparams) ToHyperparams() chain.Hyperparams {
	return chain.Hyperparams{
		Tempo: h.Tempo, WeightsRateLimit: h.WeightsRateLimit, WeightsVersionKey: h.WeightsVersion,
		MaxWeightsLimit: h.MaxWeightsLimit, MinAllowedWeights: h.MinAllowedWeights,
		MaxValidators: h.MaxValidators, ServingRateLimit: h.ServingRateLimit,
		CommitRevealEnabled: h.CommitRevealWeightsEnabled, RevealPeriodEpochs: h.CommitRevealPeriod,
		ImmunityPeriod: h.ImmunityPeriod, StakeThreshold: h.StakeThreshold,
	}
}

// FromBlock converts a chain block.
func FromBlock(b chain.Block) Block {
	return Block{Number: b.Number, Hash: "0x" + hex.EncodeToString(b.Hash[:])}
}

// ToBlock converts Pylon's block. A hash that is not 32 bytes of hex is an error: Pylon
// always serves one.
func (b Block) ToBlock() (chain.Block, error) {
	out := chain.Block{Number: b.Number}
	raw, err := hex.DecodeString(strings.TrimPrefix(b.Hash, "0x"))
	if err != nil || len(raw) != len(out.Hash) {
		return chain.Block{}, fmt.Errorf("block %d: hash %q is not 32 bytes of 0x-prefixed hex", b.Number, b.Hash)
	}
	copy(out.Hash[:], raw)
	return out, nil
}

// TAO converts rao to Pylon's float amount.
func TAO(rao uint64) float64 { return float64(rao) / RaoPerTAO }

// Rao converts Pylon's float amount to rao, rounding to the nearest rao. Amounts above
// 2^53 rao (about 9 million TAO) lose precision in Pylon's floats before they reach us.
func Rao(tao float64) (uint64, error) {
	if math.IsNaN(tao) || math.IsInf(tao, 0) || tao < 0 || tao*RaoPerTAO >= math.MaxUint64 {
		return 0, fmt.Errorf("amount %v is not a finite, non-negative TAO value", tao)
	}
	return uint64(math.Round(tao * RaoPerTAO)), nil
}

// FromNeuron converts a chain neuron; its whole stake is reported as alpha.
func FromNeuron(n chain.Neuron) Neuron {
	ip := "0.0.0.0"
	if n.Axon.IP.IsValid() {
		ip = n.Axon.IP.String()
	}
	stake := TAO(n.Stake)
	return Neuron{
		UID: uint16(n.UID), Coldkey: string(n.Coldkey), Hotkey: string(n.Hotkey), Active: n.Active,
		AxonInfo:        AxonInfo{IP: ip, Port: n.Axon.Port, Protocol: int(n.Axon.Protocol)},
		Stake:           stake,
		LastUpdate:      n.LastUpdate,
		ValidatorPermit: n.ValidatorPermit,
		Stakes:          Stakes{Alpha: stake, Total: stake},
	}
}

// ToNeuron converts Pylon's neuron, taking the stake from stakes.total. An axon ip that is
// not an address, a protocol outside 0..255 or a bad stake is an error naming the neuron.
func (n Neuron) ToNeuron() (chain.Neuron, error) {
	fail := func(format string, args ...any) (chain.Neuron, error) {
		return chain.Neuron{}, fmt.Errorf("neuron uid %d (%s): "+format, append([]any{n.UID, n.Hotkey}, args...)...)
	}
	if n.Hotkey == "" {
		return fail("no hotkey")
	}
	ip, err := netip.ParseAddr(n.AxonInfo.IP)
	if err != nil {
		return fail("axon_info.ip %q is not an IPv4 or IPv6 address", n.AxonInfo.IP)
	}
	if n.AxonInfo.Protocol < 0 || n.AxonInfo.Protocol > math.MaxUint8 {
		return fail("axon_info.protocol %d is outside 0..255", n.AxonInfo.Protocol)
	}
	stake, err := Rao(n.Stakes.Total)
	if err != nil {
		return fail("stakes.total: %v", err)
	}
	return chain.Neuron{
		UID: chain.UID(n.UID), Hotkey: chain.Hotkey(n.Hotkey), Coldkey: chain.Coldkey(n.Coldkey),
		Active:          n.Active,
		Axon:            chain.AxonInfo{IP: ip.Unmap(), Port: n.AxonInfo.Port, Protocol: uint8(n.AxonInfo.Protocol)},
		ValidatorPermit: n.ValidatorPermit,
		Stake:           stake,
		LastUpdate:      n.LastUpdate,
	}, nil
}

// FromMetagraph converts a metagraph to the neurons response.
func FromMetagraph(mg *chain.Metagraph) NeuronsResponse {
	out := NeuronsResponse{Block: FromBlock(mg.Block), Neurons: make(map[string]Neuron, len(mg.Neurons))}
	for _, n := range mg.Neurons {
		out.Neurons[string(n.Hotkey)] = FromNeuron(n)
	}
	return out
}

// ErrDuplicateUID reports a neurons response that gives one uid to two hotkeys.
var ErrDuplicateUID = errors.New("two neurons share a uid")

// ToMetagraph converts the neurons response to a metagraph of netuid, sorted by uid.
// A neuron keyed under another hotkey than its own, or a uid given twice, is an error.
func (r NeuronsResponse) ToMetagraph(netuid chain.NetUID) (*chain.Metagraph, error) {
	b, err := r.Block.ToBlock()
	if err != nil {
		return nil, err
	}
	mg := &chain.Metagraph{NetUID: netuid, Block: b, Neurons: make([]chain.Neuron, 0, len(r.Neurons))}
	for key, wn := range r.Neurons {
		if key != wn.Hotkey {
			return nil, fmt.Errorf("neuron keyed %q carries hotkey %q", key, wn.Hotkey)
		}
		n, err := wn.ToNeuron()
		if err != nil {
			return nil, err
		}
		mg.Neurons = append(mg.Neurons, n)
	}
	sortByUID(mg.Neurons)
	for i := 1; i < len(mg.Neurons); i++ {
		if mg.Neurons[i].UID == mg.Neurons[i-1].UID {
			return nil, fmt.Errorf("%w: uid %d is %s and %s", ErrDuplicateUID, mg.Neurons[i].UID, mg.Neurons[i-1].Hotkey, mg.Neurons[i].Hotkey)
		}
	}
	return mg, nil
}

// EncodeCommitment is Pylon's form of commitment data: 0x-prefixed hex.
func EncodeCommitment(data []byte) string { return "0x" + hex.EncodeToString(data) }

// DecodeCommitment reads commitment hex, with or without the 0x prefix (Pylon accepts both
// on input and serves 0x).
func DecodeCommitment(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		return nil, fmt.Errorf("commitment %q is not hex: %v", truncate(s, 40), err)
	}
	return b, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sortByUID(ns []chain.Neuron) {
	slices.SortFunc(ns, func(a, b chain.Neuron) int { return cmp.Compare(a.UID, b.UID) })
}
