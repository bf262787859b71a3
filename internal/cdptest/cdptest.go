// Package cdptest drives a headless Chromium over the Chrome DevTools Protocol, just enough
// for browser tests of horde's pages: start it, attach to its page, navigate, evaluate
// JavaScript in the page, take a screenshot.
package cdptest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// FindChromium returns the path of Debian's chromium (or a distribution's chromium-browser),
// or "" when there is none.
func FindChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is a running headless Chromium with a connection to its one page.
type Browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	page   *websocket.Conn
	nextID int
	stderr *lockedBuffer // Chromium's output, for failure messages
}

// Start starts bin headless with a fresh profile in a temporary directory and
// attaches to its page. Chromium is killed, and its profile removed, when the test ends.
func Start(ctx context.Context, t *testing.T, bin string) *Browser {
	t.Helper()
	profile := t.TempDir() // removed after the cleanup below has stopped Chromium
	cmd := exec.Command(bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
		"--remote-debugging-port=0", "--user-data-dir="+profile, "about:blank")
	// Its own process group, so that the renderers and helpers it forks go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	b := &Browser{t: t, cmd: cmd, stderr: &lockedBuffer{}}
	t.Cleanup(func() {
		if b.page != nil {
			b.page.CloseNow()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})

	// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" once
	// it serves; the rest of its output is kept for failure messages.
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			b.stderr.add(line)
			if rest, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				select {
				case found <- strings.TrimSpace(rest):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pipe)
	}()
	var browserURL string
	select {
	case browserURL = <-found:
	case <-ctx.Done():
		t.Fatalf("chromium printed no DevTools address: %v; output:\n%s", ctx.Err(), b.stderr)
	}
	u, err := url.Parse(browserURL)
	if err != nil {
		t.Fatalf("DevTools address %q: %v", browserURL, err)
	}

	// The page started with about:blank is listed, with its own websocket, by /json/list.
	var targets []struct{ Type, WebSocketDebuggerURL string }
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.Host+"/json/list", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("list DevTools targets: %v", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("list DevTools targets: %v", err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			b.page, _, err = websocket.Dial(ctx, tg.WebSocketDebuggerURL, nil)
			if err != nil {
				t.Fatalf("attach to the page: %v", err)
			}
			b.page.SetReadLimit(64 << 20)
			return b
		}
	}
	t.Fatalf("chromium has no page target: %+v", targets)
	return nil
}

// call sends one CDP command and returns its result, skipping the events that arrive in
// between (none are enabled, so there are few).
func (b *Browser) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	b.nextID++
	id := b.nextID
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if err := b.page.Write(ctx, websocket.MessageText, msg); err != nil {
		return nil, fmt.Errorf("cdp %s: %w", method, err)
	}
	for {
		_, data, err := b.page.Read(ctx)
		if err != nil {
			return nil, fmt.Errorf("cdp %s: %w", method, err)
		}
		var r struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("cdp %s: %w", method, err)
		}
		if r.ID != id {
			continue // an event
		}
		if r.Error != nil {
			return nil, fmt.Errorf("cdp %s: %d %s", method, r.Error.Code, r.Error.Message)
		}
		return r.Result, nil
	}
}

// Navigate loads rawURL in the page.
func (b *Browser) Navigate(ctx context.Context, rawURL string) {
	b.t.Helper()
	res, err := b.call(ctx, "Page.navigate", map[string]any{"url": rawURL})
	if err != nil {
		b.t.Fatal(err)
	}
	var r struct{ ErrorText string }
	if json.Unmarshal(res, &r) == nil && r.ErrorText != "" {
		b.t.Fatalf("navigate to %s: %s", rawURL, r.ErrorText)
	}
}

// Eval evaluates a JavaScript expression in the page and returns its value as a string.
// DevTools evaluation is not subject to the page's Content-Security-Policy, which allows
// the page itself no script at all.
func (b *Browser) Eval(ctx context.Context, expr string) string {
	b.t.Helper()
	v, err := b.TryEval(ctx, expr)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// TryEval is Eval returning its error: while a page is being replaced, evaluation can
// fail for want of a document.
func (b *Browser) TryEval(ctx context.Context, expr string) (string, error) {
	res, err := b.call(ctx, "Runtime.evaluate", map[string]any{"expression": "String(" + expr + ")", "returnByValue": true})
	if err != nil {
		return "", err
	}
	var r struct {
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return "", fmt.Errorf("evaluate %s: %w", expr, err)
	}
	if e := r.ExceptionDetails; e != nil {
		return "", fmt.Errorf("evaluate %s: %s %s", expr, e.Text, e.Exception.Description)
	}
	return r.Result.Value, nil
}

// WaitUntil evaluates expr until it gives want, or fails the test when ctx ends.
func (b *Browser) WaitUntil(ctx context.Context, expr string, want func(string) bool) {
	b.t.Helper()
	for {
		v, err := b.TryEval(ctx, expr)
		if err == nil && want(v) {
			return
		}
		select {
		case <-ctx.Done():
			b.t.Fatalf("waiting for %s: %v (last value %q, error %v)", expr, ctx.Err(), v, err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// WaitFor waits until the page has loaded path (location.pathname) completely.
func (b *Browser) WaitFor(ctx context.Context, path string) {
	b.t.Helper()
	b.WaitUntil(ctx, `document.readyState + " " + location.pathname`, func(v string) bool { return v == "complete "+path })
}

// lockedBuffer collects lines from one goroutine for another to print.
type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedBuffer) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 200 {
		l.lines = append(l.lines, s)
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// Screenshot captures the page as PNG.
func (b *Browser) Screenshot(ctx context.Context) []byte {
	b.t.Helper()
	res, err := b.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		b.t.Fatal(err)
	}
	var r struct{ Data []byte }
	if err := json.Unmarshal(res, &r); err != nil {
		b.t.Fatal(err)
	}
	return r.Data
}
