package main

import (
	"context"
	"fmt"
	"io"

	"github.com/computehorde/horde/jobs/hello/hellojob"
)

// jobCommand is the hidden sub-command that job images built from the horde binary itself
// use as their entrypoint: `horde __job hello ARGS…`.
const jobCommand = "__job"

func runJob(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: name a job program (hello)", errUsage)
	}
	switch args[0] {
	case "hello":
		if code := hellojob.Main(args[1:], stdout, stderr); code != 0 {
			return exitCode(code)
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown job program %q (known: hello)", errUsage, args[0])
	}
}

// exitCode is an error that carries a job program's exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
