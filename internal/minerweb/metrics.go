package minerweb

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/computehorde/horde/internal/protocol"
)

// serveMetrics writes the miner's state in Prometheus' text exposition format (0.0.4), by
// hand: a handful of gauges and counters, all read from one Status.
func (h *Handler) serveMetrics(w http.ResponseWriter, r *http.Request) {
	st, err := h.src.Status(r.Context())
	if err != nil {
		h.log.Error("metrics: cannot read the miner's status", "err", err)
		http.Error(w, "cannot read the miner's status; see the miner's log", http.StatusServiceUnavailable)
		return
	}
	var b bytes.Buffer
	m := metricWriter{&b}

	offered := map[protocol.ExecutorClass]int{}
	inFlight := map[protocol.ExecutorClass]int{}
	for _, e := range st.Manifest {
		offered[e.Class] = e.Count
		inFlight[e.Class] = 0
	}
	for _, j := range st.Jobs {
		inFlight[j.Class]++
	}
	m.family("horde_miner_manifest_executors", "gauge", "Executors the miner's configured manifest offers, by executor class.")
	for _, c := range slices.Sorted(maps.Keys(offered)) {
		m.sample("horde_miner_manifest_executors", offered[c], "class", string(c))
	}
	m.family("horde_miner_jobs_in_flight", "gauge", "Jobs accepted and not yet settled, by executor class.")
	for _, c := range slices.Sorted(maps.Keys(inFlight)) {
		m.sample("horde_miner_jobs_in_flight", inFlight[c], "class", string(c))
	}
	m.family("horde_miner_validator_connections", "gauge", "Validator websockets open, authenticated or not.")
	m.sample("horde_miner_validator_connections", st.ValidatorConns)
	m.family("horde_miner_draining", "gauge", "1 while the miner declines new jobs before it stops.")
	m.sample("horde_miner_draining", boolValue(st.Draining))

	m.family("horde_miner_axon_ok", "gauge", "1 when the chain shows the configured axon (or none is configured).")
	m.sample("horde_miner_axon_ok", boolValue(st.Axon.OK))

	mg := st.Metagraph
	m.family("horde_miner_metagraph_block", "gauge", "Newest block of the miner's metagraph cache; 0 before the first refresh.")
	m.sample("horde_miner_metagraph_block", mg.Block)
	m.family("horde_miner_metagraph_stale", "gauge", "1 when the metagraph cache has not refreshed for too long, or never.")
	m.sample("horde_miner_metagraph_stale", boolValue(mg.Stale))
	if !mg.RefreshedAt.IsZero() {
		m.family("horde_miner_metagraph_age_seconds", "gauge", "Seconds since the metagraph cache last refreshed.")
		m.sample("horde_miner_metagraph_age_seconds", st.At.Sub(mg.RefreshedAt).Seconds())
	}

	m.family("horde_miner_job_declines_total", "counter", "Jobs declined since the miner started, by reason.")
	for _, c := range st.DeclineCounts {
		m.sample("horde_miner_job_declines_total", c.N, "reason", c.Reason)
	}
	m.family("horde_miner_job_failures_total", "counter",
		"Jobs failed since the miner started, by kind (horde: the miner or executor; job: the job itself) and reason.")
	for _, c := range st.FailureCounts {
		m.sample("horde_miner_job_failures_total", c.N, "kind", c.Kind, "reason", c.Reason)
	}

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

type metricWriter struct{ b *bytes.Buffer }

func (m metricWriter) family(name, typ, help string) {
	fmt.Fprintf(m.b, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// sample writes one line; labels are name, value pairs.
func (m metricWriter) sample(name string, value any, labels ...string) {
	m.b.WriteString(name)
	if len(labels) > 0 {
		m.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.b.WriteByte(',')
			}
			fmt.Fprintf(m.b, `%s="%s"`, labels[i], escapeLabel(labels[i+1]))
		}
		m.b.WriteByte('}')
	}
	m.b.WriteByte(' ')
	switch v := value.(type) {
	case float64:
		m.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	default:
		fmt.Fprint(m.b, v)
	}
	m.b.WriteByte('\n')
}

func boolValue(b bool) int {
	if b {
		return 1
	}
	return 0
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
