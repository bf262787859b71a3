package facilitator

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPI: the document served at /api/v1/openapi.json is JSON and describes exactly
// the routes the server registers, no more and no fewer.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, "", nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	getJSON(t, e.srv.URL+"/api/v1/openapi.json", &doc)
	var documented, served []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	for _, rt := range e.f.routes() {
		served = append(served, rt.method+" "+rt.path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if doc.OpenAPI != "3.1.0" || !slices.Equal(documented, served) {
		t.Errorf("openapi %q documents\n%v\nthe server serves\n%v", doc.OpenAPI, documented, served)
	}
}

// TestEventsAndLogs: the event stream replays the statuses so far, follows the job, and ends
// with the whole job; the logs endpoint returns the output as text; both are the owner's only.
func TestEventsAndLogs(t *testing.T) {
	e := newEnv(t, "", nil)
	v := e.validator("//Alice")
	c, _ := e.user("//Ferdie", 10_000_000)
	job, err := c.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	v.job()
	v.status(job.UUID, "received", nil)
	tok := e.token("//Ferdie")
	get := func(token, path string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get(tok, "/api/v1/jobs/"+job.UUID+"/events")
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var statuses []string
	next := func() (event, data string) {
		t.Helper()
		for l := range lines {
			switch {
			case strings.HasPrefix(l, "event: "):
				event = strings.TrimPrefix(l, "event: ")
			case strings.HasPrefix(l, "data: "):
				return event, strings.TrimPrefix(l, "data: ")
			}
		}
		t.Fatalf("the stream ended; statuses so far %v", statuses)
		return "", ""
	}
	for len(statuses) < 3 { // queued, sent, received: the history so far
		ev, data := next()
		var h HistoryEntry
		if ev != "status" || json.Unmarshal([]byte(data), &h) != nil {
			t.Fatalf("event %q %s", ev, data)
		}
		statuses = append(statuses, h.Status)
	}
	v.status(job.UUID, "accepted", nil)
	v.status(job.UUID, "completed", completed("out\n", job.UUID))
	var final JobView
	for {
		ev, data := next()
		if ev == "job" {
			if err := json.Unmarshal([]byte(data), &final); err != nil {
				t.Fatal(err)
			}
			break
		}
		var h HistoryEntry
		_ = json.Unmarshal([]byte(data), &h)
		statuses = append(statuses, h.Status)
	}
	if strings.Join(statuses, ",") != "queued,sent,received,accepted,completed" || final.Status != "completed" {
		t.Errorf("streamed %v, then %s", statuses, final.Status)
	}

	logs := get(tok, "/api/v1/jobs/"+job.UUID+"/logs")
	body, _ := io.ReadAll(logs.Body)
	if string(body) != "out\n" || logs.Header.Get("X-Job-Status") != "completed" {
		t.Errorf("logs: %q (%s)", body, logs.Header.Get("X-Job-Status"))
	}
	other := e.token("//Dave")
	for _, p := range []string{"/events", "/logs"} {
		if r := get(other, "/api/v1/jobs/"+job.UUID+p); r.StatusCode != http.StatusNotFound {
			t.Errorf("another user's %s: HTTP %d", p, r.StatusCode)
		}
	}
}
