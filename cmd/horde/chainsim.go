package main

import (
	"context"
	"errors"
	"io"
)

// runChainSim is written by the simserver work (placeholder while it is in progress).
func runChainSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
