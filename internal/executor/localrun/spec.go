// Package localrun runs one job spec through a real executor on this machine, with a loopback
// miner in place of a remote one: `horde executor run --spec job.json`. The executor, its
// runtime, volumes and uploads are exactly those a miner's executor uses; only the miner side
// is played here, so a user can debug a job before paying for it and a miner can check a machine
// before registering it.
package localrun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/protocol"
)

// DefaultClass is the executor class of a spec that names none: the CPU test class, which any
// machine can run.
const DefaultClass = protocol.ExecutorClassAlwaysOnTest

// Default time limits (seconds) of a spec that gives none.
const (
	DefaultAllowedLeeway      = 5
	DefaultDownloadTimeLimit  = 300
	DefaultExecutionTimeLimit = 600
	DefaultUploadTimeLimit    = 300
)

// timingKeys are the spec fields that are not V0JobRequest fields.
var timingKeys = []string{"allowed_leeway", "download_time_limit", "execution_time_limit", "upload_time_limit"}

// ParseSpec reads a job spec: a JSON object with V0JobRequest's fields under upstream's names
// (docker_image, docker_run_cmd, env, volume, output_upload, artifacts_dir, raw_script,
// docker_run_options_preset, executor_class) plus the time limits allowed_leeway,
// download_time_limit, execution_time_limit and upload_time_limit in seconds. It returns the job
// as a miner hands it to an executor: the job request, under a new job UUID, and the time limits
// of the initial request before it. Missing optional fields get upstream's defaults; unknown
// fields, wrong types and bad values are errors that name the field.
func ParseSpec(data []byte) (protocol.V0JobRequest, protocol.ExecutorTiming, error) {
	req, timing, err := parseSpec(data)
	if err == nil {
		// What an executor would refuse, refused here: a spec that parses runs anywhere.
		err = errors.Join(
			executor.CheckTiming(&timing, nil),
			executor.CheckImage("docker_image", req.DockerImage),
			executor.CheckJobRequest(&req),
		)
	}
	if err != nil {
		return protocol.V0JobRequest{}, protocol.ExecutorTiming{}, fmt.Errorf("job spec: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return req, timing, nil
}

// parseSpec decodes the spec. The request's fields go through the protocol's own strict
// decoder: they replace those of a default request as the protocol encodes it, and the whole
// is decoded as the V0JobRequest an executor receives.
func parseSpec(data []byte) (req protocol.V0JobRequest, timing protocol.ExecutorTiming, err error) {
	if len(data) > protocol.MaxFrameSize {
		return req, timing, fmt.Errorf("%d bytes, more than a job request may carry (%d)", len(data), protocol.MaxFrameSize)
	}
	fields, err := objectFields(data)
	if err != nil {
		return req, timing, err
	}
	request, err := defaultRequest()
	if err != nil {
		return req, timing, err
	}
	if timing, err = readTiming(fields, request); err != nil {
		return req, timing, err
	}
	// The values as the protocol's reader reads them: it holds each to the protocol's rules
	// (UTF-8, no duplicate keys, numbers in range) and names the field it faults.
	var spec protocol.OrderedMap[json.RawMessage]
	if err := spec.UnmarshalJSON(data); err != nil {
		return req, timing, err
	}
	for key, value := range spec.All() {
		if !slices.Contains(timingKeys, key) {
			// Moved behind the defaults, so that of several bad fields the spec's first is named.
			request.Delete(key)
			request.Set(key, value)
		}
	}
	encoded, err := request.MarshalJSON()
	if err == nil {
		err = req.UnmarshalJSON(encoded)
	}
	if err == nil && timing.ExecutionTimeLimit == 0 {
		err = errors.New("execution_time_limit must be at least 1 second")
	}
	return req, timing, err
}

// readTiming reads the spec's time limits and checks that its other fields are request
// fields a user may set, docker_image among them.
func readTiming(fields []field, request protocol.OrderedMap[json.RawMessage]) (protocol.ExecutorTiming, error) {
	timing := protocol.ExecutorTiming{
		AllowedLeeway:      DefaultAllowedLeeway,
		DownloadTimeLimit:  DefaultDownloadTimeLimit,
		ExecutionTimeLimit: DefaultExecutionTimeLimit,
		UploadTimeLimit:    DefaultUploadTimeLimit,
	}
	limits := map[string]*int{
		"allowed_leeway":       &timing.AllowedLeeway,
		"download_time_limit":  &timing.DownloadTimeLimit,
		"execution_time_limit": &timing.ExecutionTimeLimit,
		"upload_time_limit":    &timing.UploadTimeLimit,
	}
	hasImage := false
	for _, f := range fields {
		hasImage = hasImage || f.key == "docker_image"
		if dst, ok := limits[f.key]; ok {
			if err := json.Unmarshal(f.value, dst); err != nil || *dst < 0 {
				return timing, fmt.Errorf("%s must be a non-negative whole number of seconds, not %s", f.key, f.value)
			}
			continue
		}
		if f.key == "message_type" || f.key == "job_uuid" {
			return timing, fmt.Errorf("field %q is set by the runner; remove it", f.key)
		}
		if _, known := request.Get(f.key); !known {
			// A typo must not be silently ignored: the job would run without what it asked for.
			return timing, fmt.Errorf("unknown field %q; known fields: docker_image, %s, %s",
				f.key, strings.Join(optionalFields(request), ", "), strings.Join(timingKeys, ", "))
		}
	}
	if !hasImage {
		return timing, errors.New(`"docker_image" is required`)
	}
	return timing, nil
}

// defaultRequest returns the fields of a job request with upstream's defaults and a new job
// UUID, as the protocol encodes them.
func defaultRequest() (protocol.OrderedMap[json.RawMessage], error) {
	var fields protocol.OrderedMap[json.RawMessage]
	encoded, err := protocol.Encode(&protocol.V0JobRequest{
		JobUUID:                uuid.NewString(),
		ExecutorClass:          DefaultClass,
		DockerRunOptionsPreset: protocol.DockerRunOptionsPresetNone,
		DockerRunCmd:           []string{},
	})
	if err == nil {
		err = fields.UnmarshalJSON(encoded)
	}
	return fields, err
}

// optionalFields lists, sorted, the request fields a spec may leave out.
func optionalFields(request protocol.OrderedMap[json.RawMessage]) []string {
	var out []string
	for _, k := range request.Keys() {
		if k != "message_type" && k != "job_uuid" && k != "docker_image" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

type field struct {
	key   string
	value json.RawMessage
}

// objectFields returns the members of a JSON object in order, rejecting duplicates and
// anything after the object.
func objectFields(data []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("want a JSON object")
	}
	var fields []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("field %q: malformed JSON: %w", key, err)
		}
		fields = append(fields, field{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return fields, nil
}
