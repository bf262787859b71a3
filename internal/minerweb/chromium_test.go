package minerweb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/cdptest"
)

// TestPanelInChromium signs in to the panel with a real browser, headless Chromium driven
// over the DevTools Protocol, and reads the pages as a user sees them: the login form, the
// overview (with its nonce-allowed style applied), the jobs list, one job, and logout.
func TestPanelInChromium(t *testing.T) {
	bin := cdptest.FindChromium()
	if bin == "" {
		t.Skip("no chromium on PATH: install Debian's chromium (apt-get install chromium) to run the browser test; scripts/test.sh does")
	}
	if testing.Short() {
		t.Skip("starts a browser; skipped in -short")
	}
	e := newEnv(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := cdptest.Start(ctx, t, bin)
	text := func() string { return b.Eval(ctx, "document.body.innerText") }

	b.Navigate(ctx, e.srv.URL+"/admin/login/")
	b.WaitFor(ctx, "/admin/login/")
	if got := text(); !strings.Contains(got, "Miner admin: sign in") {
		t.Fatalf("login page reads:\n%s", got)
	}

	// A wrong password first: the form comes back with the error.
	b.Eval(ctx, `(() => {
		document.getElementById("username").value = "operator";
		document.getElementById("password").value = "wrong";
		document.getElementById("signin").click();
		return "";
	})()`)
	b.WaitUntil(ctx, `document.readyState + " " + document.body.innerText`, func(v string) bool {
		return strings.HasPrefix(v, "complete ") && strings.Contains(v, "Wrong username or password.")
	})

	b.Eval(ctx, `(() => {
		document.getElementById("username").value = "operator";
		document.getElementById("password").value = "`+testPassword+`";
		document.getElementById("signin").click();
		return "";
	})()`)
	b.WaitFor(ctx, "/admin/")
	overview := text()
	for _, want := range []string{"Overview", runningJob, "4242", declinedJob, "busy <b>"} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview lacks %q; reads:\n%s", want, overview)
		}
	}
	// The inline style carries the CSP nonce: the browser applied it.
	if bg := b.Eval(ctx, `getComputedStyle(document.querySelector("header")).backgroundColor`); bg != "rgb(31, 45, 61)" {
		t.Errorf("header background = %q: the style element was blocked", bg)
	}
	if cookies := b.Eval(ctx, "document.cookie"); cookies != "" {
		t.Errorf("the page's script can read cookies %q: the session cookie must be HttpOnly", cookies)
	}

	b.Eval(ctx, `document.querySelector('a[href="/admin/jobs/"]').click()`)
	b.WaitFor(ctx, "/admin/jobs/")
	jobs := text()
	if !strings.Contains(jobs, finishedJob) || !strings.Contains(jobs, "finished") {
		t.Fatalf("jobs page lacks the finished job %s; reads:\n%s", finishedJob, jobs)
	}

	b.Eval(ctx, `document.querySelector('a[href="/admin/jobs/`+finishedJob+`/"]').click()`)
	b.WaitFor(ctx, "/admin/jobs/"+finishedJob+"/")
	if job := text(); !strings.Contains(job, "JobFinishedReceipt") || !strings.Contains(job, "compute-horde-job-echo") {
		t.Errorf("job page reads:\n%s", job)
	}

	b.Eval(ctx, `document.querySelector('header form button').click()`)
	b.WaitFor(ctx, "/admin/login/")
	b.Navigate(ctx, "about:blank") // so that the wait below cannot see the page just left
	b.WaitFor(ctx, "blank")
	b.Navigate(ctx, e.srv.URL+"/admin/jobs/")
	b.WaitFor(ctx, "/admin/login/") // logged out: sent back to the login page
}
