// Command hello is the smallest horde job: it greets, lists /volume, writes into /output and
// exits. It is built statically (CGO_ENABLED=0) and packed into a one-layer image by
// internal/jobimage, so tests need no registry and no Dockerfile. See package hellojob for the
// flags.
package main

import (
	"os"

	"github.com/computehorde/horde/jobs/hello/hellojob"
)

func main() {
	os.Exit(hellojob.Main(os.Args[1:], os.Stdout, os.Stderr))
}
