package minerweb

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/store"
)

const (
	// workWindow is the overview's period for work done per class.
	workWindow = 24 * time.Hour
	// maxJobRows caps the jobs page's table; the page says how many more there were.
	maxJobRows = 500
	// maxJobsHours caps the jobs page's ?hours=.
	maxJobsHours = 7 * 24
)

// The store lists receipts by time but jobs only oldest first and in full, so recent jobs
// are found through their receipts: every job a validator sends comes with a JobStarted
// receipt, which the miner stores before it decides (also for jobs it then declines).
// This reads one window of receipts, not the whole jobs table.

// jobRow is one job as the panel lists it.
type jobRow struct {
	UUID      string
	Validator string
	Class     string
	Organic   bool
	Seen      time.Time // the earliest receipt in the window: the JobStarted one, normally
	Receipts  []string  // receipt types held, in time order

	// Stored is false for a job the miner has receipts of but no row for: declined, or
	// refused before it was recorded.
	Stored           bool
	Status           string
	Created, Updated time.Time
	Outcome          outcome

	Finished bool          // a JobFinished receipt is held
	Took     time.Duration // its time_took
	Score    string        // its score_str
}

// outcome is the gist of a job's stored result (the report relayed to the validator).
type outcome struct {
	Type    string `json:"message_type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Stage   string `json:"stage"`
	Exit    *int   `json:"docker_process_exit_status"`
}

// classWork is the work of one executor class that validators signed for in a window.
type classWork struct {
	Class           string
	Finished        int           // JobFinished receipts
	Worked          time.Duration // sum of their time_took
	Score           float64       // sum of their score_str
	IntervalSeconds int64         // sum of WorkInterval receipts' worked_seconds
}

// work is what the receipts of one window say.
type work struct {
	Since   time.Time
	Jobs    []jobRow // newest first, at most the limit asked for
	More    int      // jobs in the window past the limit
	ByClass []classWork
}

// recentWork reads the receipts of hotkey since since. With rows > 0 it also loads the
// stored rows of the newest rows jobs.
func (h *Handler) recentWork(ctx context.Context, hotkey string, since time.Time, rows int) (work, error) {
	w := work{Since: since}
	rs, err := h.db.ListReceipts(ctx, store.ReceiptFilter{Since: since, MinerHotkey: hotkey})
	if err != nil {
		return w, err
	}
	byJob := map[string]*jobRow{}
	intervals := map[string]int64{} // worked seconds by class
	for _, r := range rs {
		j := byJob[r.JobUUID]
		if j == nil {
			j = &jobRow{UUID: r.JobUUID, Validator: r.ValidatorHotkey, Seen: r.Timestamp}
			byJob[r.JobUUID] = j
		}
		j.Receipts = append(j.Receipts, r.Type)
		switch protocol.ReceiptType(r.Type) {
		case protocol.ReceiptTypeJobStarted:
			var p protocol.JobStartedReceiptPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				j.Class, j.Organic = string(p.ExecutorClass), p.IsOrganic
			}
		case protocol.ReceiptTypeJobFinished:
			var p protocol.JobFinishedReceiptPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				j.Finished, j.Took, j.Score = true, p.TimeTook(), p.ScoreStr
			}
		case protocol.ReceiptTypeWorkInterval:
			var p protocol.WorkIntervalReceiptPayload
			if json.Unmarshal(r.Payload, &p) == nil {
				j.Class = cmp.Or(j.Class, string(p.ExecutorClass))
				intervals[string(p.ExecutorClass)] += int64(p.WorkedSeconds)
			}
		}
	}

	all := make([]*jobRow, 0, len(byJob))
	for _, j := range byJob {
		all = append(all, j)
	}
	slices.SortFunc(all, func(a, b *jobRow) int { return cmp.Or(b.Seen.Compare(a.Seen), cmp.Compare(a.UUID, b.UUID)) })
	if len(all) > rows {
		w.More = len(all) - rows
	}
	for i, j := range all {
		// A job whose JobStarted receipt is older than the window still has its class in
		// the store: needed for its work, and for every row shown.
		if i < rows || (j.Finished && j.Class == "") {
			if err := h.loadJob(ctx, j); err != nil {
				return w, err
			}
		}
		if i < rows {
			w.Jobs = append(w.Jobs, *j)
		}
	}

	byClass := map[string]*classWork{}
	get := func(class string) *classWork {
		c := byClass[class]
		if c == nil {
			c = &classWork{Class: class}
			byClass[class] = c
		}
		return c
	}
	for _, j := range all {
		if !j.Finished {
			continue
		}
		c := get(cmp.Or(j.Class, "unknown"))
		c.Finished++
		c.Worked += j.Took
		if s, err := strconv.ParseFloat(j.Score, 64); err == nil {
			c.Score += s
		}
	}
	for class, secs := range intervals {
		get(class).IntervalSeconds += secs
	}
	for _, c := range byClass {
		w.ByClass = append(w.ByClass, *c)
	}
	slices.SortFunc(w.ByClass, func(a, b classWork) int { return cmp.Compare(a.Class, b.Class) })
	return w, nil
}

// loadJob fills j from the job's stored row, if there is one.
func (h *Handler) loadJob(ctx context.Context, j *jobRow) error {
	row, err := h.db.GetJob(ctx, j.UUID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	j.Stored, j.Status, j.Created, j.Updated = true, row.Status, row.CreatedAt, row.UpdatedAt
	j.Class = cmp.Or(row.ExecutorClass, j.Class)
	j.Validator = cmp.Or(row.ValidatorHotkey, j.Validator)
	j.Outcome = parseOutcome(row.Result)
	return nil
}

func parseOutcome(result json.RawMessage) outcome {
	var o outcome
	if len(result) > 0 {
		_ = json.Unmarshal(result, &o) // a result of another shape shows no outcome
	}
	return o
}

// classRow is one class of the overview's manifest table.
type classRow struct {
	Class    string
	Offered  int
	InFlight int
}

type overviewPage struct {
	S       miner.Status
	Classes []classRow
	Work    work
	Hours   int // the period of Work
}

func (h *Handler) serveOverview(w http.ResponseWriter, r *http.Request) {
	st, err := h.src.Status(r.Context())
	if err != nil {
		h.fail(w, r, "read its status", err)
		return
	}
	p := overviewPage{S: st, Hours: int(workWindow / time.Hour)}
	inFlight := map[protocol.ExecutorClass]int{}
	for _, j := range st.Jobs {
		inFlight[j.Class]++
	}
	for _, e := range st.Manifest {
		p.Classes = append(p.Classes, classRow{Class: string(e.Class), Offered: e.Count, InFlight: inFlight[e.Class]})
		delete(inFlight, e.Class)
	}
	for c, n := range inFlight { // jobs of a class no longer offered
		p.Classes = append(p.Classes, classRow{Class: string(c), InFlight: n})
	}
	if p.Work, err = h.recentWork(r.Context(), st.Hotkey, st.At.Add(-workWindow), 0); err != nil {
		h.fail(w, r, "read its receipts", err)
		return
	}
	h.render(w, r, http.StatusOK, "overview.html", "Overview", p)
}

type jobsPage struct {
	Work  work
	Hours int
}

func (h *Handler) serveJobs(w http.ResponseWriter, r *http.Request) {
	hours := 24
	if s := r.URL.Query().Get("hours"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxJobsHours {
			h.render(w, r, http.StatusBadRequest, "error.html", "Bad request",
				errorPage{Message: "hours must be a whole number from 1 to " + strconv.Itoa(maxJobsHours) + "."})
			return
		}
		hours = n
	}
	st, err := h.src.Status(r.Context())
	if err != nil {
		h.fail(w, r, "read its status", err)
		return
	}
	wk, err := h.recentWork(r.Context(), st.Hotkey, st.At.Add(-time.Duration(hours)*time.Hour), maxJobRows)
	if err != nil {
		h.fail(w, r, "read its jobs", err)
		return
	}
	h.render(w, r, http.StatusOK, "jobs.html", "Jobs", jobsPage{Work: wk, Hours: hours})
}

// receiptView is one receipt on a job's page.
type receiptView struct {
	store.Receipt
	PayloadText string // indented JSON
}

type jobPage struct {
	UUID     string
	Job      *store.Job // nil when the miner has receipts of the job but no row
	Outcome  outcome
	Receipts []receiptView
	Started  *protocol.JobStartedReceiptPayload
	Accepted *protocol.JobAcceptedReceiptPayload
	Finished *protocol.JobFinishedReceiptPayload
}

func (h *Handler) serveJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("uuid")
	ctx := r.Context()
	p := jobPage{UUID: id}
	row, err := h.db.GetJob(ctx, id)
	switch {
	case err == nil:
		p.Job, p.Outcome = &row, parseOutcome(row.Result)
	case !errors.Is(err, store.ErrNotFound):
		h.fail(w, r, "read the job", err)
		return
	}
	for _, t := range []protocol.ReceiptType{protocol.ReceiptTypeJobStarted, protocol.ReceiptTypeJobAccepted,
		protocol.ReceiptTypeJobFinished, protocol.ReceiptTypeWorkInterval} {
		rc, err := h.db.GetReceipt(ctx, string(t), id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			h.fail(w, r, "read the job's receipts", err)
			return
		}
		v := receiptView{Receipt: rc, PayloadText: string(rc.Payload)}
		var buf bytes.Buffer
		if json.Indent(&buf, rc.Payload, "", "  ") == nil {
			v.PayloadText = buf.String()
		}
		p.Receipts = append(p.Receipts, v)
		switch t {
		case protocol.ReceiptTypeJobStarted:
			p.Started = decodeInto[protocol.JobStartedReceiptPayload](rc.Payload)
		case protocol.ReceiptTypeJobAccepted:
			p.Accepted = decodeInto[protocol.JobAcceptedReceiptPayload](rc.Payload)
		case protocol.ReceiptTypeJobFinished:
			p.Finished = decodeInto[protocol.JobFinishedReceiptPayload](rc.Payload)
		}
	}
	if p.Job == nil && len(p.Receipts) == 0 {
		h.notFound(w, r)
		return
	}
	h.render(w, r, http.StatusOK, "job.html", "Job "+id, p)
}

// decodeInto decodes a stored receipt payload, or returns nil.
func decodeInto[T any](data []byte) *T {
	v := new(T)
	if json.Unmarshal(data, v) != nil {
		return nil
	}
	return v
}
