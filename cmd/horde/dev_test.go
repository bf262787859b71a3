package main

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	pasteLine    = regexp.MustCompile(`^  (HORDE_FACILITATOR_URL=(http://127\.0\.0\.1:\d+) HORDE_API_KEY=\S+ .+ job run --image \S+ -- it works)$`)
	minerRow     = regexp.MustCompile(`(?m)^miner +//\w+ +5\w{47} +ws://127\.0\.0\.1:\d+ +\d+ × always_on\.test at [0-9.]+ α/h; admin panel (http://127\.0\.0\.1:\d+/admin/login/)$`)
	validatorRow = regexp.MustCompile(`(?m)^validator +//\w+ +5\w{47} +- +stake (\d+) TAO`)
)

// TestCLIDevSubnet runs the default `horde dev`: it prints the table of the whole subnet
// (a facilitator, two validators of different stake, three miners with different offers,
// the funded dev user) and a `horde job run` line that, pasted into a shell while horde dev
// runs, completes a job as the dev user.
func TestCLIDevSubnet(t *testing.T) {
	needDocker(t)
	p := startDev(t, "--interval", "1h", "--", jobMarker)
	var paste, facilitatorURL string
	deadline := time.After(60 * time.Second)
	for paste == "" {
		select {
		case line, ok := <-p.lines:
			if !ok {
				_ = p.cmd.Wait()
				t.Fatalf("horde dev exited before printing the job run line (%v)\n--- stdout ---\n%s--- stderr ---\n%s", p.cmd.ProcessState, p.stdout.String(), p.stderr.String())
			}
			if m := pasteLine.FindStringSubmatch(line); m != nil {
				paste, facilitatorURL = m[1], m[2]
			}
		case <-deadline:
			t.Fatalf("no job run line within 60 s\n--- stdout ---\n%s--- stderr ---\n%s", p.stdout.String(), p.stderr.String())
		}
	}
	table := p.stdout.String()
	wantContains(t, "the table", table, "facilitator  //Facilitator", facilitatorURL+"/login", "user         //Ferdie",
		"1000 credits; API key ", "Miner admin panels: user admin, password ", "horde dev: subnet up in ")
	validators := validatorRow.FindAllStringSubmatch(table, -1)
	if len(validators) != 2 || validators[0][1] != "30000" || validators[1][1] != "10000" {
		t.Errorf("validator rows %v, want //Alice with 30000 TAO and //Charlie with 10000:\n%s", validators, table)
	}
	miners := minerRow.FindAllStringSubmatch(table, -1)
	if len(miners) != 3 {
		t.Fatalf("%d miner rows, want 3:\n%s", len(miners), table)
	}

	// The pages it names answer.
	for _, u := range []string{facilitatorURL + "/login", miners[0][1], miners[2][1]} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", u, resp.Status)
		}
	}

	// The line, pasted into a shell.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "sh", "-c", paste)
	var out, errOut bytes.Buffer
	sh.Stdout, sh.Stderr = &out, &errOut
	if err := sh.Run(); err != nil || !strings.Contains(out.String(), "hello from horde it works\n") {
		t.Fatalf("%s: %v\n--- stdout ---\n%s--- stderr ---\n%s--- horde dev ---\n%s", paste, err, out.String(), errOut.String(), p.stderr.String())
	}
	wantContains(t, "job run's progress", errOut.String(), "queued", "completed; charged")

	// The demo job horde dev submitted itself ends too (it may run after the pasted one).
	var demo []string
	for wait := time.After(60 * time.Second); demo == nil; {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("horde dev exited before the demo job's result\n%s", p.stdout.String())
			}
			demo = jobLine.FindStringSubmatch(line)
		case <-wait:
			t.Fatalf("no demo job result within 60 s\n--- stdout ---\n%s--- stderr ---\n%s", p.stdout.String(), p.stderr.String())
		}
	}
	if demo[2] != "completed" {
		t.Errorf("the demo job did not complete:\n%s", p.stdout.String())
	}
	r := p.stop(t, 10*time.Second)
	if r.code != 0 {
		t.Fatalf("want exit 0 after SIGINT:\n%s", r)
	}
	requireNoLeftovers(t)
}
