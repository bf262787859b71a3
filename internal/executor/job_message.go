package executor

import (
	"encoding/json"

	"github.com/computehorde/horde/internal/protocol"
)

// envList turns the job's env map into "KEY=value" entries, in the order received.
func envList(req *protocol.V0JobRequest) []string {
	var out []string
	for k, v := range req.Env.All() {
		out = append(out, k+"="+v)
	}
	return out
}

// failureContext encodes the free-form context object of a failure message.
func failureContext(m map[string]any) json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}
