package facilitator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/cdptest"
	"github.com/computehorde/horde/internal/protocol"
)

// TestPagesInChromium: a real browser (headless Chromium over the DevTools Protocol) signs in
// with an API key, opens the jobs list and sees a finished job, opens the job and reads its
// output, timeline and cost, then the account and the public market page. With
// $HORDE_SCREENSHOTS set, a PNG of each page is written there to be looked at.
func TestPagesInChromium(t *testing.T) {
	bin := cdptest.FindChromium()
	if bin == "" {
		t.Skip("no chromium on PATH: install Debian's chromium (apt-get install chromium) to run the browser test")
	}
	if testing.Short() {
		t.Skip("starts a browser; skipped in -short")
	}
	e := newEnv(t, "", nil)
	v := e.validator("//Alice")
	c, _ := e.user("//Ferdie", 10_000_000)
	job, err := c.Submit(t.Context(), helloSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	v.job()
	for _, s := range []protocol.JobStatus{"received", "accepted", "executor_ready", "volumes_ready", "execution_done"} {
		v.status(job.UUID, s, nil)
	}
	v.work(job.UUID, job.UUID, 0, 42)
	v.status(job.UUID, "completed", completed("hello from the page test\n", job.UUID))
	key, err := c.CreateKey(t.Context(), "browser")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := cdptest.Start(ctx, t, bin)
	text := func() string { return b.Eval(ctx, "document.body.innerText") }
	shot := func(name string) {
		if dir := os.Getenv("HORDE_SCREENSHOTS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, "facilitator-"+name+".png"), b.Screenshot(ctx), 0o644); err != nil {
				t.Error(err)
			}
		}
	}

	b.Navigate(ctx, e.srv.URL+"/jobs")
	b.WaitFor(ctx, "/login") // not signed in
	shot("login")
	b.Eval(ctx, `(() => { document.getElementById("credential").value = "hk_wrong"; document.getElementById("signin").click(); return ""; })()`)
	b.WaitUntil(ctx, `document.readyState + " " + document.body.innerText`, func(v string) bool {
		return strings.HasPrefix(v, "complete ") && strings.Contains(v, "unknown or revoked API key")
	})
	b.Eval(ctx, `(() => { document.getElementById("credential").value = "`+key.Key+`"; document.getElementById("signin").click(); return ""; })()`)
	b.WaitFor(ctx, "/jobs")
	jobs := text()
	if !strings.Contains(jobs, job.UUID) || !strings.Contains(jobs, "completed") || !strings.Contains(jobs, "0.042") ||
		!strings.Contains(jobs, "hello from the page test") {
		t.Fatalf("jobs page reads:\n%s", jobs)
	}
	if bg := b.Eval(ctx, `getComputedStyle(document.querySelector("header")).backgroundColor`); bg != "rgb(23, 50, 77)" {
		t.Errorf("header background %q: the nonce'd style was blocked", bg)
	}
	if cookies := b.Eval(ctx, "document.cookie"); cookies != "" {
		t.Errorf("the page can read cookies %q: the session must be HttpOnly", cookies)
	}
	shot("jobs")

	b.Eval(ctx, `document.querySelector('a[href="/jobs/`+job.UUID+`"]').click()`)
	b.WaitFor(ctx, "/jobs/"+job.UUID)
	page := text()
	for _, want := range []string{"hello from the page test", "volumes_ready", "execution_done", "completed", "0.042 credits", "0.001 credits per second"} {
		if !strings.Contains(page, want) {
			t.Errorf("job page lacks %q; reads:\n%s", want, page)
		}
	}
	shot("job")

	b.Eval(ctx, `document.querySelector('a[href="/account"]').click()`)
	b.WaitFor(ctx, "/account")
	if acct := text(); !strings.Contains(acct, "browser") || !strings.Contains(acct, "9.958 credits") || !strings.Contains(acct, "hold") {
		t.Errorf("account page reads:\n%s", acct)
	}
	shot("account")

	e.f.sampleMarket(time.Now().Add(-time.Minute))
	e.f.sampleMarket(time.Now())
	b.Eval(ctx, `document.querySelector('a[href="/market"]').click()`)
	b.WaitFor(ctx, "/market")
	if m := text(); !strings.Contains(m, "always_on.test") || !strings.Contains(m, "Demand multipliers over time") {
		t.Errorf("market page reads:\n%s", m)
	}
	if n := b.Eval(ctx, `document.querySelectorAll("svg.chart polyline").length`); n == "0" {
		t.Errorf("the market chart has no lines")
	}
	shot("market")

	b.Eval(ctx, `document.querySelector('header form button').click()`)
	b.WaitFor(ctx, "/login")
	b.Navigate(ctx, "about:blank")
	b.WaitFor(ctx, "blank")
	b.Navigate(ctx, e.srv.URL+"/account")
	b.WaitFor(ctx, "/login") // signed out
}
