// Package hellojob is the logic of the hello job (jobs/hello), importable so that the horde
// binary can run it as a hidden sub-command and tests can call it in-process.
//
// Behaviour, in order:
//
//   - prints "hello from horde" followed by its arguments on one stdout line;
//   - lists the regular files under /volume (if it exists), one "volume: <path> <size>" line each;
//   - writes /output/hello.txt (if /output is writable) and prints "output: wrote hello.txt";
//   - --dial ADDR: tries a TCP connection to ADDR (2 s timeout) and prints
//     "dial ADDR: ok" or "dial ADDR: failed: <error>";
//   - --print-bytes N: writes N more bytes ('x', newline every 100) to stdout;
//   - --stderr TEXT: writes TEXT and a newline to stderr;
//   - --copy SRC:DST: copies file SRC to DST and prints "copy SRC: N bytes" (or the error);
//   - --write PATH:BYTES: writes BYTES bytes of a repeating pattern to PATH, stopping at the
//     first error, and prints "write PATH: N bytes" (plus the error) — for artifacts and
//     disk-limit tests;
//   - --alloc-mb N: allocates and touches N MiB of memory (for memory-limit tests);
//   - --sleep D: sleeps for the Go duration D (e.g. 30s);
//   - --exit N: writes "exiting with status N" to stderr and returns N (default 0).
//
// Unknown arguments are only echoed. A malformed flag value prints an error to stderr and returns 2.
package hellojob

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Greeting starts the first stdout line.
const Greeting = "hello from horde"

// Main runs the hello job with args (without the program name) and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(args, stdout, stderr, "/volume", "/output")
}

type options struct {
	exit       int
	sleep      time.Duration
	dial       []string
	printBytes int
	stderrText []string
	allocMB    int
	copies     [][2]string
	writes     []write
}

type write struct {
	path  string
	bytes int64
}

func parse(args []string) (options, error) {
	var o options
	for i := 0; i < len(args); i++ {
		flag := args[i]
		switch flag {
		case "--exit", "--sleep", "--dial", "--print-bytes", "--stderr", "--alloc-mb", "--copy", "--write":
		default:
			continue
		}
		if i+1 >= len(args) {
			return o, fmt.Errorf("%s needs a value", flag)
		}
		i++
		val := args[i]
		switch flag {
		case "--exit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 255 {
				return o, fmt.Errorf("--exit %q: want an integer 0-255", val)
			}
			o.exit = n
		case "--sleep":
			d, err := time.ParseDuration(val)
			if err != nil {
				return o, fmt.Errorf("--sleep %q: want a Go duration such as 30s", val)
			}
			o.sleep = d
		case "--dial":
			o.dial = append(o.dial, val)
		case "--print-bytes":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return o, fmt.Errorf("--print-bytes %q: want a non-negative integer", val)
			}
			o.printBytes = n
		case "--stderr":
			o.stderrText = append(o.stderrText, val)
		case "--alloc-mb":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return o, fmt.Errorf("--alloc-mb %q: want a non-negative integer", val)
			}
			o.allocMB = n
		case "--copy":
			src, dst, ok := strings.Cut(val, ":")
			if !ok || src == "" || dst == "" {
				return o, fmt.Errorf("--copy %q: want SRC:DST", val)
			}
			o.copies = append(o.copies, [2]string{src, dst})
		case "--write":
			path, size, ok := strings.Cut(val, ":")
			n, err := strconv.ParseInt(size, 10, 64)
			if !ok || path == "" || err != nil || n < 0 {
				return o, fmt.Errorf("--write %q: want PATH:BYTES", val)
			}
			o.writes = append(o.writes, write{path, n})
		}
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer, volumeDir, outputDir string) int {
	out := bufio.NewWriter(stdout)
	defer out.Flush()

	line := Greeting
	if len(args) > 0 {
		line += " " + strings.Join(args, " ")
	}
	fmt.Fprintln(out, line)

	o, err := parse(args)
	if err != nil {
		out.Flush()
		fmt.Fprintln(stderr, "hello:", err)
		return 2
	}

	listVolume(out, volumeDir)
	writeOutput(out, outputDir, line)
	for _, addr := range o.dial {
		fmt.Fprintf(out, "dial %s: %s\n", addr, dial(addr))
	}
	for _, c := range o.copies {
		fmt.Fprintf(out, "copy %s: %s\n", c[0], copyFile(c[0], c[1]))
	}
	for _, w := range o.writes {
		fmt.Fprintf(out, "write %s: %s\n", w.path, writeFile(w.path, w.bytes))
	}
	if o.printBytes > 0 {
		printBytes(out, o.printBytes)
	}
	out.Flush()
	for _, s := range o.stderrText {
		fmt.Fprintln(stderr, s)
	}
	if o.allocMB > 0 {
		fmt.Fprintf(stdout, "allocated %d MiB\n", alloc(o.allocMB))
	}
	if o.sleep > 0 {
		time.Sleep(o.sleep)
	}
	if o.exit != 0 {
		fmt.Fprintf(stderr, "exiting with status %d\n", o.exit)
	}
	return o.exit
}

func listVolume(out io.Writer, dir string) {
	if _, err := os.Stat(dir); err != nil {
		return
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(out, "volume: error: %v\n", err)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		var size int64
		if info, err := d.Info(); err == nil {
			size = info.Size()
		}
		fmt.Fprintf(out, "volume: %s %d\n", filepath.ToSlash(rel), size)
		return nil
	})
}

func writeOutput(out io.Writer, dir, line string) {
	if _, err := os.Stat(dir); err != nil {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(line+"\n"), 0o644); err != nil {
		fmt.Fprintf(out, "output: not writable: %v\n", err)
		return
	}
	fmt.Fprintln(out, "output: wrote hello.txt")
}

func dial(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "failed: " + err.Error()
	}
	c.Close()
	return "ok"
}

func printBytes(out io.Writer, n int) {
	row := []byte(strings.Repeat("x", 99) + "\n")
	for n > 0 {
		k := min(n, len(row))
		if k == len(row) {
			out.Write(row)
		} else {
			out.Write(row[len(row)-k:]) // the short tail still ends in a newline
		}
		n -= k
	}
}

// sink keeps allocations reachable so they are not collected.
var sink [][]byte

func alloc(mb int) int {
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		sink = append(sink, b)
	}
	return mb
}

func copyFile(src, dst string) string {
	in, err := os.Open(src)
	if err != nil {
		return "failed: " + err.Error()
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "failed: " + err.Error()
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Sprintf("%d bytes, failed: %v", n, err)
	}
	return fmt.Sprintf("%d bytes", n)
}

func writeFile(path string, size int64) string {
	f, err := os.Create(path)
	if err != nil {
		return "failed: " + err.Error()
	}
	chunk := []byte(strings.Repeat("horde-output-pattern\n", 1<<14)) // 336 KiB
	var n int64
	for n < size && err == nil {
		var k int
		k, err = f.Write(chunk[:min(int64(len(chunk)), size-n)])
		n += int64(k)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Sprintf("%d bytes, failed: %v", n, err)
	}
	return fmt.Sprintf("%d bytes", n)
}
