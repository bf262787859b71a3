package faults

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx"
	_ "modernc.org/sqlite"             // "sqlite"
)

// Invariant is one checked property and what broke it (empty when it holds).
type Invariant struct {
	Name   string
	Broken []string
}

// Report is the invariants' table.
type Report struct {
	Invariants []Invariant
	Charged    map[string]int64 // user hotkey → net charge
	ByStatus   map[string]int   // final status → jobs
	// ByReason counts the rejected and horde_failed jobs by the reason their result gives
	// ("rejected: busy").
	ByReason map[string]int
	// Receipts and Countersigned count the work-interval receipts the validators hold;
	// AtMiners the countersigned ones in the miners' databases.
	Receipts, Countersigned, AtMiners int
	// Tempos is how many (validator, tempo) pairs the weights invariant checked.
	Tempos int
}

// OK reports whether every invariant holds.
func (r *Report) OK() bool {
	for _, i := range r.Invariants {
		if len(i.Broken) > 0 {
			return false
		}
	}
	return true
}

// FirstBroken is the first invariant that does not hold, with its first offence.
func (r *Report) FirstBroken() string {
	for _, i := range r.Invariants {
		if len(i.Broken) > 0 {
			return fmt.Sprintf("%s: %s (%d offences)", i.Name, i.Broken[0], len(i.Broken))
		}
	}
	return ""
}

// Table prints the invariants, one a line.
func (r *Report) Table() string {
	var b strings.Builder
	for _, i := range r.Invariants {
		mark := "ok  "
		if len(i.Broken) > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s %s\n", mark, i.Name)
		for k, s := range i.Broken {
			if k == 5 {
				fmt.Fprintf(&b, "       … %d more\n", len(i.Broken)-k)
				break
			}
			fmt.Fprintf(&b, "       %s\n", s)
		}
	}
	writeCounts(&b, "jobs by final status:", r.ByStatus)
	if len(r.ByReason) > 0 {
		writeCounts(&b, "\nwhy the horde did not run them:", r.ByReason)
	}
	fmt.Fprintf(&b, "\nwork receipts: %d, countersigned %d (at the miners %d); tempos checked for weights: %d; users charged:",
		r.Receipts, r.Countersigned, r.AtMiners, r.Tempos)
	users := make([]string, 0, len(r.Charged))
	for u := range r.Charged {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		fmt.Fprintf(&b, " %.8s…=%d", u, r.Charged[u])
	}
	b.WriteString("\n")
	return b.String()
}

// writeCounts writes title and each " key=count" of m in key order.
func writeCounts(b *strings.Builder, title string, m map[string]int) {
	b.WriteString(title)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(b, " %s=%d", k, m[k])
	}
}

// openDB opens a role's database read-only: PostgreSQL through the host's DSN, SQLite in its
// bind-mounted data directory (beside the running role; WAL lets both read).
func openDB(r *Role, file string) (*sql.DB, error) {
	if r.DSN != "" {
		return sql.Open("pgx", r.DSN)
	}
	return sql.Open("sqlite", "file:"+filepath.Join(r.Dir, "data", file)+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
}

// failureReason is the reason a rejected or horde_failed job's result gives, "" for other
// results.
func failureReason(result string) string {
	var md struct {
		Rejection *struct {
			Reason string `json:"reason"`
		} `json:"job_rejection_details"`
		HordeFailure *struct {
			Reason string `json:"reason"`
		} `json:"horde_failure_details"`
	}
	if json.Unmarshal([]byte(result), &md) != nil {
		return ""
	}
	switch {
	case md.Rejection != nil:
		return md.Rejection.Reason
	case md.HordeFailure != nil:
		return md.HordeFailure.Reason
	}
	return ""
}

var finalStatuses = []string{"completed", "failed", "rejected", "horde_failed", "cancelled"}

// Check reads the facilitator's and the validators' databases and the engine and checks
// the invariants for the jobs submitted.
func (h *Harness) Check(ctx context.Context, jobs []Submitted) (*Report, error) {
	rep := &Report{Charged: map[string]int64{}, ByStatus: map[string]int{}, ByReason: map[string]int{}}
	fdb, err := openDB(h.Role("facilitator"), "facilitator.db")
	if err != nil {
		return nil, err
	}
	defer fdb.Close()

	type facJob struct {
		user, status, result string
		price, maxCost, paid int64
	}
	fjobs := map[string]*facJob{}
	rows, err := fdb.QueryContext(ctx, `SELECT uuid, user_hotkey, status, price, max_cost, charged, COALESCE(CAST(result AS TEXT), '') FROM fac_jobs`)
	if err != nil {
		return nil, fmt.Errorf("faults: read fac_jobs: %w", err)
	}
	for rows.Next() {
		var id string
		j := &facJob{}
		if err := rows.Scan(&id, &j.user, &j.status, &j.price, &j.maxCost, &j.paid, &j.result); err != nil {
			rows.Close()
			return nil, err
		}
		fjobs[id] = j
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	events := map[string][]string{}
	rows, err = fdb.QueryContext(ctx, `SELECT job_uuid, status FROM fac_job_events ORDER BY job_uuid, seq`)
	if err != nil {
		return nil, fmt.Errorf("faults: read fac_job_events: %w", err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			rows.Close()
			return nil, err
		}
		events[id] = append(events[id], st)
	}
	rows.Close()
	type entry struct {
		key, kind, account, job, note string
		amount                        int64
	}
	var ledger []entry
	rows, err = fdb.QueryContext(ctx, `SELECT tx_key, kind, account, amount, job_uuid, note FROM ledger_entries ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("faults: read ledger_entries: %w", err)
	}
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.key, &e.kind, &e.account, &e.amount, &e.job, &e.note); err != nil {
			rows.Close()
			return nil, err
		}
		ledger = append(ledger, e)
	}
	rows.Close()
	balances := map[string]int64{}
	rows, err = fdb.QueryContext(ctx, `SELECT account, balance FROM ledger_balances`)
	if err != nil {
		return nil, fmt.Errorf("faults: read ledger_balances: %w", err)
	}
	for rows.Next() {
		var a string
		var b int64
		if err := rows.Scan(&a, &b); err != nil {
			rows.Close()
			return nil, err
		}
		balances[a] = b
	}
	rows.Close()

	// Countersigned work receipts, from every validator (each pulls every miner's).
	counter := map[rkey]int{}
	signed := map[rkey]int{}
	type held struct {
		miner   string
		seconds int
	}
	// Per validator: each countersigned work receipt and how many rows hold it.
	vheld := map[string]map[rkey]held{}
	vrows := map[string]map[rkey]int{}
	readWork := func(r *Role, file string, each func(k rkey, miner string, seconds int, countersigned bool)) error {
		db, err := openDB(r, file)
		if err != nil {
			return err
		}
		defer db.Close()
		rows, err := db.QueryContext(ctx, `SELECT job_uuid, seq, miner_hotkey, CAST(payload AS TEXT), COALESCE(miner_signature, '') FROM receipts WHERE receipt_type = 'WorkInterval'`)
		if err != nil {
			return fmt.Errorf("faults: read %s's receipts: %w", r.Name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var k rkey
			var miner, payload, msig string
			if err := rows.Scan(&k.job, &k.seq, &miner, &payload, &msig); err != nil {
				return err
			}
			var p struct {
				WorkedSeconds int `json:"worked_seconds"`
			}
			_ = json.Unmarshal([]byte(payload), &p)
			each(k, miner, p.WorkedSeconds, msig != "")
		}
		return rows.Err()
	}
	for _, v := range h.RolesOf("validator") {
		vheld[v.Name], vrows[v.Name] = map[rkey]held{}, map[rkey]int{}
		if err := readWork(v, "validator.db", func(k rkey, miner string, secs int, cs bool) {
			signed[k] = secs
			if cs {
				counter[k] = secs
				vheld[v.Name][k] = held{miner, secs}
				vrows[v.Name][k]++
			}
		}); err != nil {
			return nil, err
		}
	}
	// The countersigned work receipts as the miners hold them (each signed its own).
	mheld := map[rkey]held{}
	for _, m := range h.RolesOf("miner") {
		if err := readWork(m, "miner.db", func(k rkey, miner string, secs int, cs bool) {
			if cs {
				mheld[k] = held{miner, secs}
			}
		}); err != nil {
			return nil, err
		}
	}
	seconds := func(m map[rkey]int, attempt string) int64 {
		var s int64
		for k, v := range m {
			if k.job == attempt {
				s += int64(v)
			}
		}
		return s
	}

	// 1. Every submitted job reaches exactly one final state.
	one := Invariant{Name: "every job reaches exactly one final state"}
	for _, j := range jobs {
		fj := fjobs[j.UUID]
		if fj == nil {
			one.Broken = append(one.Broken, fmt.Sprintf("job %s: not in the facilitator's database", j.UUID))
			continue
		}
		rep.ByStatus[fj.status]++
		if r := failureReason(fj.result); r != "" {
			rep.ByReason[fj.status+": "+r]++
		}
		if !slices.Contains(finalStatuses, fj.status) {
			one.Broken = append(one.Broken, fmt.Sprintf("job %s (%s): status %s is not final", j.UUID, j.Plan.Kind, fj.status))
		}
		var finals []string
		for _, st := range events[j.UUID] {
			if slices.Contains(finalStatuses, st) {
				finals = append(finals, st)
			}
		}
		if len(finals) != 1 || finals[0] != fj.status {
			one.Broken = append(one.Broken, fmt.Sprintf("job %s: final events %v, status %s", j.UUID, finals, fj.status))
		}
		if j.Plan.Kind == JobFail && fj.status == "completed" {
			one.Broken = append(one.Broken, fmt.Sprintf("job %s exits 3 but completed", j.UUID))
		}
		if j.Plan.Kind != JobFail && fj.status == "failed" {
			one.Broken = append(one.Broken, fmt.Sprintf("job %s (%s) exits 0 but failed (the user's fault)", j.UUID, j.Plan.Kind))
		}
	}
	if len(fjobs) != len(jobs) {
		one.Broken = append(one.Broken, fmt.Sprintf("the facilitator holds %d jobs, %d were submitted", len(fjobs), len(jobs)))
	}

	// 2. The ledger sums to zero, agrees with its balances, and no user or hold is negative;
	// nothing is left on hold.
	led := Invariant{Name: "ledger sums to zero, balances agree, none negative, no hold left"}
	var sum int64
	sums := map[string]int64{}
	for _, e := range ledger {
		sum += e.amount
		sums[e.account] += e.amount
	}
	if sum != 0 {
		led.Broken = append(led.Broken, fmt.Sprintf("entries sum to %d", sum))
	}
	accounts := map[string]bool{}
	for a := range sums {
		accounts[a] = true
	}
	for a := range balances {
		accounts[a] = true
	}
	for _, a := range sortedKeys(accounts) {
		if sums[a] != balances[a] {
			led.Broken = append(led.Broken, fmt.Sprintf("%s: entries sum to %d, balance %d", a, sums[a], balances[a]))
		}
		if !strings.HasPrefix(a, "system:") && balances[a] < 0 {
			led.Broken = append(led.Broken, fmt.Sprintf("%s: negative balance %d", a, balances[a]))
		}
		if strings.HasPrefix(a, "hold:") && balances[a] != 0 {
			led.Broken = append(led.Broken, fmt.Sprintf("%s: %d still held after the job ended", a, balances[a]))
		}
	}

	// 3. Each user pays the countersigned worked seconds of the attempt that ended each of
	// its jobs × the price, nothing for the horde's failures.
	pay := Invariant{Name: "users pay countersigned worked seconds × price, horde failures nothing"}
	net := map[string]int64{}     // job → net charge (charges − refunds)
	byNote := map[string]string{} // job → attempts charged
	for _, e := range ledger {
		switch {
		case e.kind == "charge" && e.amount < 0:
			net[e.job] -= e.amount
			if !strings.Contains(byNote[e.job], e.note) {
				byNote[e.job] += e.note + " "
			}
		case e.kind == "refund" && e.amount < 0:
			net[e.job] += e.amount
		}
	}
	users := map[string]int64{}
	for _, j := range jobs {
		fj := fjobs[j.UUID]
		if fj == nil {
			continue
		}
		users[j.User] += net[j.UUID]
		if net[j.UUID] != fj.paid {
			pay.Broken = append(pay.Broken, fmt.Sprintf("job %s: ledger charges %d, fac_jobs.charged %d", j.UUID, net[j.UUID], fj.paid))
		}
		var want int64
		attempt := attemptOf(fj.result)
		if fj.status == "completed" || fj.status == "failed" {
			if attempt == "" {
				pay.Broken = append(pay.Broken, fmt.Sprintf("job %s (%s): no attempt_uuid in its result %s", j.UUID, fj.status, fj.result))
				continue
			}
			want = min(seconds(counter, attempt)*fj.price, fj.maxCost)
		}
		if net[j.UUID] != want {
			pay.Broken = append(pay.Broken, fmt.Sprintf("job %s (%s, %s, attempt %s): charged %d, want %d (countersigned %d s, signed %d s × %d; charges of attempts %s)",
				j.UUID, j.Plan.Kind, fj.status, attempt, net[j.UUID], want, seconds(counter, attempt), seconds(signed, attempt), fj.price, byNote[j.UUID]))
		}
	}
	for i, u := range h.Users {
		spent := Grant - balances["user:"+u.SS58()]
		rep.Charged[u.SS58()] = users[u.SS58()]
		if spent != users[u.SS58()] {
			pay.Broken = append(pay.Broken, fmt.Sprintf("user-%d: balance down %d, its jobs' net charges %d", i+1, spent, users[u.SS58()]))
		}
	}

	// 4. Nothing left on the engine.
	left := Invariant{Name: "no executor or job container left on the engine"}
	l, err := h.Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	left.Broken = l

	// 5. Every countersigned work receipt is held once by every validator; none is invented.
	once := Invariant{Name: "every countersigned work receipt held once by every validator, none invented"}
	for _, v := range h.RolesOf("validator") {
		for _, k := range sortedRKeys(vheld[v.Name]) {
			got, m := vheld[v.Name][k], mheld[k]
			switch {
			case m == (held{}):
				once.Broken = append(once.Broken, fmt.Sprintf("%s counts job %s interval %d (%d s), which no miner countersigned", v.Name, k.job, k.seq, got.seconds))
			case got != m:
				once.Broken = append(once.Broken, fmt.Sprintf("%s counts job %s interval %d as %d s of %.8s…, the miner countersigned %d s of %.8s…",
					v.Name, k.job, k.seq, got.seconds, got.miner, m.seconds, m.miner))
			}
			if n := vrows[v.Name][k]; n != 1 {
				once.Broken = append(once.Broken, fmt.Sprintf("%s holds job %s interval %d %d times", v.Name, k.job, k.seq, n))
			}
		}
		for _, k := range sortedRKeys(mheld) {
			if _, ok := vheld[v.Name][k]; !ok {
				once.Broken = append(once.Broken, fmt.Sprintf("%s lacks job %s interval %d (%d s), countersigned by miner %.8s…", v.Name, k.job, k.seq, mheld[k].seconds, mheld[k].miner))
			}
		}
	}

	// 6. The validators agree on each miner's worked seconds (and with the miners).
	agree := Invariant{Name: "validators agree on each miner's countersigned worked seconds"}
	perMiner := func(m map[rkey]held) map[string]int64 {
		out := map[string]int64{}
		for _, x := range m {
			out[x.miner] += int64(x.seconds)
		}
		return out
	}
	want := perMiner(mheld)
	for _, v := range h.RolesOf("validator") {
		got := perMiner(vheld[v.Name])
		for _, mr := range h.RolesOf("miner") {
			hk := mr.Hotkey.SS58()
			if got[hk] != want[hk] {
				agree.Broken = append(agree.Broken, fmt.Sprintf("%s counts %d s for %s, which countersigned %d s", v.Name, got[hk], mr.Name, want[hk]))
			}
		}
	}

	// 7. Weights every tempo a validator was up for whole.
	wts := Invariant{Name: "weights set every tempo a validator was up for whole"}
	wts.Broken, rep.Tempos = h.checkWeights()

	// Not vacuous: the run did paid work and the receipts behind it were countersigned.
	sane := Invariant{Name: "the run did countersigned, paid work"}
	var total int64
	for _, c := range users {
		total += c
	}
	if total <= 0 || len(counter) == 0 {
		sane.Broken = append(sane.Broken, fmt.Sprintf("users paid %d in all; %d countersigned work receipts", total, len(counter)))
	}
	if rep.Tempos == 0 {
		sane.Broken = append(sane.Broken, "no tempo was checked for weights")
	}
	rep.Receipts, rep.Countersigned, rep.AtMiners = len(signed), len(counter), len(mheld)

	// Every role the harness did not stop is still up.
	alive := Invariant{Name: "no role exited on its own"}
	if alive.Broken, err = h.Exited(ctx); err != nil {
		return nil, err
	}

	rep.Invariants = []Invariant{one, led, pay, left, once, agree, wts, alive, sane}
	return rep, nil
}

// rkey names a work-interval receipt: its job (attempt) and interval.
type rkey struct {
	job string
	seq int
}

// attemptOf is the attempt_uuid a job's final status carries (which attempt the user pays).
func attemptOf(result string) string {
	var r struct {
		Attempt string `json:"attempt_uuid"`
	}
	_ = json.Unmarshal([]byte(result), &r)
	return r.Attempt
}

func sortedRKeys[V any](m map[rkey]V) []rkey {
	out := make([]rkey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b rkey) int {
		if c := strings.Compare(a.job, b.job); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
