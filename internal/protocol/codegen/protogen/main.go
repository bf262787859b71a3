// Command protogen writes internal/protocol's generated codecs (codec_gen.go) from the wire
// models' directives and tags. Run it through `go generate ./internal/protocol`; package
// codegen documents the tags.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/computehorde/horde/internal/protocol/codegen"
)

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	src, err := codegen.Generate(dir)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, codegen.GeneratedFile), src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}
