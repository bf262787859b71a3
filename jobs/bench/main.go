// Command bench is the validators' benchmark job (package benchjob): built statically and
// packed into an image offline by internal/jobimage, like the hello job.
package main

import (
	"os"

	"github.com/computehorde/horde/jobs/bench/benchjob"
)

func main() {
	os.Exit(benchjob.Main(os.Args[1:], os.Stdout, os.Stderr))
}
