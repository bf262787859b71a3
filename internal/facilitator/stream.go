package facilitator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/computehorde/horde/internal/protocol"
)

// Status changes stream as server-sent events (GET /api/v1/jobs/{uuid}/events): one
// "status" event per status the job reached, the ones before the request included, then a
// final "job" event with the whole job once it has ended. The stream reads the database, so
// it follows a job whichever replica dispatched it.

const (
	streamPoll      = 250 * time.Millisecond
	streamKeepalive = 15 * time.Second
)

func (f *Facilitator) handleEvents(w http.ResponseWriter, r *http.Request) {
	j, ok := f.ownJob(w, r)
	if !ok {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "internal", "streaming is not supported here")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	sent := 0
	tick := time.NewTicker(streamPoll)
	defer tick.Stop()
	last := time.Now()
	for {
		evs, err := f.db.FacJobEvents(ctx, j.UUID)
		if err != nil {
			return
		}
		for _, e := range evs[min(sent, len(evs)):] {
			data, _ := json.Marshal(HistoryEntry{Status: e.Status, At: e.At, Detail: e.Detail})
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", data)
			last = time.Now()
		}
		sent = max(sent, len(evs))
		if j, err = f.db.GetFacJob(ctx, j.UUID); err != nil {
			return
		}
		if slices.Contains(terminal, j.Status) {
			data, _ := json.Marshal(f.view(ctx, j))
			fmt.Fprintf(w, "event: job\ndata: %s\n\n", data)
			fl.Flush()
			return
		}
		if time.Since(last) >= streamKeepalive {
			fmt.Fprint(w, ": keep-alive\n\n")
			last = time.Now()
		}
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handleLogs returns a job's output as text: ?stream=stderr for standard error.
func (f *Facilitator) handleLogs(w http.ResponseWriter, r *http.Request) {
	j, ok := f.ownJob(w, r)
	if !ok {
		return
	}
	v := f.view(r.Context(), j)
	out := v.Stdout
	switch r.URL.Query().Get("stream") {
	case "", "stdout":
	case "stderr":
		out = v.Stderr
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "stream: stdout or stderr")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Job-Status", v.Status)
	_, _ = w.Write([]byte(out))
}

const (
	// outputsUploadTTL is how long a job's output upload URL lives: the job may wait in the
	// queue before it runs (S3 presigns at most a week).
	outputsUploadTTL = 7 * 24 * time.Hour
	// outputsDownloadTTL is how long a download URL handed to the user lives.
	outputsDownloadTTL = 15 * time.Minute
)

// outputsKey names a job's zipped /output in the blob store.
func outputsKey(job string) string { return "jobs/" + job + "/output.zip" }

// handleOutputs hands the owner a signed, expiring URL of the job's zipped /output, when
// the facilitator's blob store took it (the job named no upload target of its own).
func (f *Facilitator) handleOutputs(w http.ResponseWriter, r *http.Request) {
	j, ok := f.ownJob(w, r)
	if !ok {
		return
	}
	var spec protocol.V2JobRequest
	if f.cfg.Blobs == nil || json.Unmarshal(j.Spec, &spec) != nil || spec.OutputUpload == nil || spec.OutputUpload.ZipAndHTTPPut == nil {
		writeError(w, http.StatusNotFound, "no_outputs", "this job's outputs went to the upload target it named, not to the facilitator")
		return
	}
	if !slices.Contains(terminal, j.Status) {
		writeError(w, http.StatusConflict, "not_finished", "the job is "+j.Status+"; its outputs are uploaded when it ends")
		return
	}
	u, err := f.cfg.Blobs.GetURL(r.Context(), outputsKey(j.UUID), outputsDownloadTTL)
	if err != nil {
		f.internal(w, "sign the outputs' URL", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"url": u, "expires_at": time.Now().Add(outputsDownloadTTL).UTC(), "format": "zip"})
}
