package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// errOutputTooLarge stops the stdout copy once a command prints more than
// maxStdout bytes.
var errOutputTooLarge = errors.New("output too large")

// run runs path with args under timeout and returns its stdout. The command
// gets its own process group, and the whole group is killed on timeout or
// cancellation, so a wrapper script's children cannot outlive it or hold
// the output pipe open.
func run(ctx context.Context, timeout time.Duration, path string, args ...string) ([]byte, error) {
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(runCtx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Backstop in case something outside the group still holds the pipes.
	cmd.WaitDelay = time.Second
	stdout := &capWriter{max: maxStdout, failOver: true}
	stderr := &capWriter{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	err := cmd.Run()
	if err == nil && !stdout.over {
		return stdout.buf.Bytes(), nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("gpu: %s: %w", path, ctx.Err())
	case runCtx.Err() != nil:
		return nil, fmt.Errorf("gpu: %s: killed after the %v time limit: %w", path, timeout, runCtx.Err())
	case stdout.over:
		// Checked before err: the command usually dies of SIGPIPE once the
		// copy stops, which would hide the real cause.
		return nil, fmt.Errorf("gpu: %s: printed more than %d bytes: %w", path, maxStdout, errOutputTooLarge)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return nil, fmt.Errorf("gpu: %s %s: %w; stderr: %q", path, strings.Join(args, " "), err, stderrText(stderr))
	}
	return nil, fmt.Errorf("gpu: %s: %w", path, err)
}

func stderrText(w *capWriter) string {
	s := strings.TrimSpace(w.buf.String())
	if w.over {
		s += "..."
	}
	return s
}

// capWriter keeps the first max bytes written. Past that it fails the write
// when failOver is set (stopping the copy and, via SIGPIPE, the command),
// and otherwise drops the rest quietly.
type capWriter struct {
	buf      bytes.Buffer
	max      int
	failOver bool
	over     bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	room := w.max - w.buf.Len()
	if len(p) <= room {
		return w.buf.Write(p)
	}
	w.over = true
	w.buf.Write(p[:max(room, 0)])
	if w.failOver {
		return 0, errOutputTooLarge
	}
	return len(p), nil
}
