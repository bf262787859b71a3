// Package localrun runs one job spec through a real executor on this machine, with a loopback
// miner in place of a remote one: `horde executor run --spec job.json`. The executor, its
// runtime, volumes and uploads are exactly those a miner's executor uses; only the miner side
// is played here, so a user can debug a job before paying for it and a miner can check a machine
// before registering it.
package localrun

import (
	"encoding/json"
	"errors"
	"fmt"
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
		// CheckJobRequest checks an image when there is one; a spec must name one.
		var noImage error
		if req.DockerImage == "" {
			noImage = executor.CheckImage("docker_image", "")
		}
		err = errors.Join(executor.CheckTiming(&timing, nil), noImage, executor.CheckJobRequest(&req))
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
	// One parse, by the protocol's own reader: it holds each value to the protocol's rules
	// (UTF-8, no duplicate keys, numbers in range) and names the field it faults.
	var spec protocol.OrderedMap[json.RawMessage]
	if err := spec.UnmarshalJSON(data); err != nil {
		return req, timing, err
	}
	request, err := defaultRequest()
	if err != nil {
		return req, timing, err
	}
	if timing, err = readTiming(spec, request); err != nil {
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
func readTiming(spec, request protocol.OrderedMap[json.RawMessage]) (protocol.ExecutorTiming, error) {
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
	for key, value := range spec.All() {
		hasImage = hasImage || key == "docker_image"
		if dst, ok := limits[key]; ok {
			if err := json.Unmarshal(value, dst); err != nil || *dst < 0 {
				return timing, fmt.Errorf("%s must be a non-negative whole number of seconds, not %s", key, value)
			}
			continue
		}
		if key == "message_type" || key == "job_uuid" {
			return timing, fmt.Errorf("field %q is set by the runner; remove it", key)
		}
		if _, known := request.Get(key); !known {
			// A typo must not be silently ignored: the job would run without what it asked for.
			return timing, fmt.Errorf("unknown field %q; known fields: docker_image, %s, %s",
				key, strings.Join(optionalFields(request), ", "), strings.Join(timingKeys, ", "))
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
