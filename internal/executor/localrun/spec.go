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
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/computehorde/horde/internal/executor"
	"github.com/computehorde/horde/internal/protocol"
)

// DefaultClass is the executor class of a spec that names none: the CPU test class, which any
// machine can run.
const DefaultClass = "always_on.test"

// Default time limits (seconds) of a spec that gives none.
const (
	DefaultAllowedLeeway      = 5
	DefaultDownloadTimeLimit  = 300
	DefaultExecutionTimeLimit = 600
	DefaultUploadTimeLimit    = 300
)

// timingKeys are the spec fields that are not V0JobRequest fields.
var timingKeys = []string{"allowed_leeway", "download_time_limit", "execution_time_limit", "upload_time_limit"}

// Job is a parsed spec: the job request the miner would send, and its time limits.
type Job struct {
	Request protocol.V0JobRequest
	Timing  protocol.ExecutorTiming
}

// ParseSpec reads a job spec: a JSON object with V0JobRequest's fields under upstream's names
// (docker_image, docker_run_cmd, env, volume, output_upload, artifacts_dir, raw_script,
// docker_run_options_preset, executor_class) plus the time limits allowed_leeway,
// download_time_limit, execution_time_limit and upload_time_limit in seconds. Missing optional
// fields get upstream's defaults; unknown fields, wrong types and bad values are errors that
// name the field.
func ParseSpec(data []byte) (Job, error) {
	if len(data) > protocol.MaxFrameSize {
		return Job{}, fmt.Errorf("job spec: %d bytes, more than a job request may carry (%d)", len(data), protocol.MaxFrameSize)
	}
	fields, err := objectFields(data)
	if err != nil {
		return Job{}, fmt.Errorf("job spec: %w", err)
	}
	job := Job{Timing: protocol.ExecutorTiming{
		AllowedLeeway:      DefaultAllowedLeeway,
		DownloadTimeLimit:  DefaultDownloadTimeLimit,
		ExecutionTimeLimit: DefaultExecutionTimeLimit,
		UploadTimeLimit:    DefaultUploadTimeLimit,
	}}
	limits := map[string]*int{
		"allowed_leeway":       &job.Timing.AllowedLeeway,
		"download_time_limit":  &job.Timing.DownloadTimeLimit,
		"execution_time_limit": &job.Timing.ExecutionTimeLimit,
		"upload_time_limit":    &job.Timing.UploadTimeLimit,
	}
	defaults := map[string]string{
		"executor_class":            `"` + DefaultClass + `"`,
		"raw_script":                "null",
		"docker_run_options_preset": `"none"`,
		"docker_run_cmd":            "[]",
		"env":                       "{}",
		"volume":                    "null",
		"output_upload":             "null",
		"artifacts_dir":             "null",
	}
	known := slices.Sorted(maps.Keys(defaults))
	// Rebuild the object as a V0JobRequest so the protocol's strict decoder checks it.
	var req bytes.Buffer
	req.WriteString(`{"message_type":"V0JobRequest","job_uuid":"` + uuid.NewString() + `"`)
	for _, f := range fields {
		if dst, ok := limits[f.key]; ok {
			if err := json.Unmarshal(f.value, dst); err != nil || *dst < 0 {
				return Job{}, fmt.Errorf("job spec: %s must be a non-negative whole number of seconds, not %s", f.key, f.value)
			}
			continue
		}
		if f.key == "message_type" || f.key == "job_uuid" {
			return Job{}, fmt.Errorf("job spec: field %q is set by the runner; remove it", f.key)
		}
		if !slices.Contains(known, f.key) && f.key != "docker_image" {
			// A typo must not be silently ignored: the job would run without what it asked for.
			return Job{}, fmt.Errorf("job spec: unknown field %q; known fields: docker_image, %s, %s",
				f.key, strings.Join(known, ", "), strings.Join(timingKeys, ", "))
		}
		delete(defaults, f.key)
		k, _ := json.Marshal(f.key)
		req.WriteByte(',')
		req.Write(k)
		req.WriteByte(':')
		req.Write(f.value)
	}
	if !hasKey(fields, "docker_image") {
		return Job{}, errors.New(`job spec: "docker_image" is required`)
	}
	for _, k := range slices.Sorted(maps.Keys(defaults)) {
		req.WriteString(`,"` + k + `":` + defaults[k])
	}
	req.WriteByte('}')
	msg, err := protocol.DecodeMinerToExecutor(req.Bytes())
	if err != nil {
		return Job{}, fmt.Errorf("job spec: %w", err)
	}
	r, ok := msg.(*protocol.V0JobRequest)
	if !ok {
		return Job{}, fmt.Errorf("job spec: decoded as %s", msg.MessageType())
	}
	job.Request = *r
	if job.Timing.ExecutionTimeLimit == 0 {
		return Job{}, errors.New("job spec: execution_time_limit must be at least 1 second")
	}
	// What an executor would refuse, refused here: a spec that parses runs anywhere.
	if err := errors.Join(
		executor.CheckTiming(&job.Timing, nil),
		executor.CheckImage("docker_image", job.Request.DockerImage),
		executor.CheckJobRequest(&job.Request),
	); err != nil {
		return Job{}, fmt.Errorf("job spec: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return job, nil
}

type field struct {
	key   string
	value json.RawMessage
}

func hasKey(fields []field, key string) bool {
	return slices.ContainsFunc(fields, func(f field) bool { return f.key == key })
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
