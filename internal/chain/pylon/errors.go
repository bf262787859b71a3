package pylon

import (
	"errors"
	"fmt"

	"github.com/computehorde/horde/internal/chain"
)

// Errors of Pylon's answers. A failed call returns an [*APIError] that wraps one of them
// (and chain.ErrUnavailable where retrying may help), so test with errors.Is.
var (
	ErrUnauthorized = errors.New("pylon: 401 Unauthorized: the request carried no token; " +
		"set the identity's token (a role: token in its [chain] table or $HORDE_<ROLE>_CHAIN_TOKEN, " +
		"such as $HORDE_MINER_CHAIN_TOKEN; a command: --chain-token or $HORDE_CHAIN_TOKEN)")
	ErrForbidden = errors.New("pylon: 403 Forbidden: Pylon rejected the token; " +
		"use the token Pylon has for this identity (PYLON_ID_<NAME>_TOKEN) or the open access token")
	ErrUnknownIdentity = errors.New("pylon: unknown identity: Pylon has no identity of this name; " +
		"check --chain-identity against Pylon's PYLON_IDENTITIES")
	ErrNoCommitment  = errors.New("pylon: no commitment: the hotkey has not published one (or only a timelocked one)")
	ErrNotFound      = errors.New("pylon: 404 Not Found")
	ErrCacheNotReady = errors.New("pylon: 503 Service Unavailable: Pylon's cache is not ready or its node is unreachable; " +
		"Pylon answers again once it has synced, so retry shortly")
	ErrRejected     = errors.New("pylon: 400 Bad Request: Pylon rejected the request")
	ErrChainRefused = errors.New("pylon: 502 Bad Gateway: the chain refused the extrinsic after Pylon's retries; " +
		"the detail has the chain's reason")
	ErrServer      = errors.New("pylon: server error")
	ErrBadResponse = errors.New("pylon: malformed response: the answer is not the JSON Pylon 0.3.0 serves; " +
		"check that --chain points at Pylon 0.3.0 or `horde chain sim`")
	ErrNoIdentity = errors.New("pylon: this call needs an identity; set identity and token in the role's [chain] table " +
		"(a command: --chain-identity and --chain-token)")
)

// APIError is a failed Pylon call: what was asked, what Pylon answered, and the sentinel
// errors that classify it.
type APIError struct {
	Method, Path string
	// Status is the HTTP status; 0 when no answer came (transport error).
	Status int
	// Detail is Pylon's detail, or the transport or decoding error.
	Detail string
	kinds  []error
}

func (e *APIError) Error() string {
	what := e.Method + " " + e.Path
	if e.Status == 0 {
		return fmt.Sprintf("%v (%s: %s)", e.kinds[0], what, e.Detail)
	}
	return fmt.Sprintf("%v (%s answered %d: %s)", e.kinds[0], what, e.Status, e.Detail)
}

// Unwrap returns the sentinels, the most specific first.
func (e *APIError) Unwrap() []error { return e.kinds }

// retryable reports whether the same call may succeed later.
func (e *APIError) retryable() bool { return errors.Is(e, chain.ErrUnavailable) }
