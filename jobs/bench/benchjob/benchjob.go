// Package benchjob is the validators' benchmark task: find the secret numbers behind a set of
// hashes, each in a given search space. The validator picks the secrets, so it knows the
// answers and checks them for free.
//
// Each search scans its space in order with every core the container has, interleaved, and
// stops at its secret, so it costs the miner secret+1 hashes. The validator knows that cost
// exactly, so the reference time of a run is the total cost over the reference rate: a
// run's efficiency measures the machine, not the luck of where the secrets fell. Because
// the secrets fall uniformly, a miner that scans in any other order gains nothing on
// average, and with many searches per run its luck evens out.
package benchjob

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Task is one search: find x in [0, Space) with sha256(Salt ‖ x as 8 bytes big-endian) = Hash.
type Task struct {
	Salt  []byte
	Hash  [32]byte
	Space uint64
}

// Digest is the hash of x under salt.
func Digest(salt []byte, x uint64) [32]byte {
	buf := make([]byte, 0, len(salt)+8)
	buf = append(buf, salt...)
	buf = binary.BigEndian.AppendUint64(buf, x)
	return sha256.Sum256(buf)
}

// TaskSalt is the salt of the i-th search of a run whose salt is salt.
func TaskSalt(salt []byte, i int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), salt...), uint32(i))
}

// Cost is what an in-order search for secret costs: the hashes computed.
func Cost(secret uint64) uint64 { return secret + 1 }

// ErrNotFound reports a task whose secret is not in its space.
var ErrNotFound = errors.New("benchjob: no number in the search space has this hash")

// checkEvery is how many candidates a worker tries between looks at whether another found
// the secret.
const checkEvery = 1024

// Solve searches the space in order on workers goroutines (worker w tries w, w+workers, …)
// and stops once the secret is found.
func Solve(t Task, workers int) (uint64, error) {
	workers = max(workers, 1)
	var (
		found atomic.Bool
		mu    sync.Mutex
		best  = t.Space
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, len(t.Salt)+8)
			copy(buf, t.Salt)
			for x, n := uint64(w), 0; x < t.Space; x, n = x+uint64(workers), n+1 {
				if n == checkEvery {
					if found.Load() {
						return
					}
					n = 0
				}
				binary.BigEndian.PutUint64(buf[len(t.Salt):], x)
				if sha256.Sum256(buf) == t.Hash {
					mu.Lock()
					best = min(best, x)
					mu.Unlock()
					found.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if best == t.Space {
		return 0, ErrNotFound
	}
	return best, nil
}

// ParseArgs reads a run's arguments: --salt HEX --space N --hashes HEX,HEX,…; the i-th
// hash is searched under TaskSalt(salt, i).
func ParseArgs(args []string, stderr io.Writer) ([]Task, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	saltHex := fs.String("salt", "", "hex salt of the run")
	hashes := fs.String("hashes", "", "comma-separated hex sha256 digests to find the secrets of")
	space := fs.Uint64("space", 0, "each secret is below this")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	salt, err := hex.DecodeString(*saltHex)
	if err != nil {
		return nil, errors.New("bench: --salt is not hex")
	}
	var tasks []Task
	for i, h := range strings.Split(*hashes, ",") {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("bench: hash %d is not 32 bytes of hex", i+1)
		}
		t := Task{Salt: TaskSalt(salt, i), Space: *space}
		copy(t.Hash[:], b)
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// SolveAll solves the tasks one after the other, each on workers goroutines.
func SolveAll(tasks []Task, workers int) ([]uint64, error) {
	out := make([]uint64, len(tasks))
	for i, t := range tasks {
		x, err := Solve(t, workers)
		if err != nil {
			return nil, fmt.Errorf("search %d: %w", i+1, err)
		}
		out[i] = x
	}
	return out, nil
}

// Main is the program: it prints the secret of each hash of its arguments (see ParseArgs)
// on its own line, in order.
func Main(args []string, stdout, stderr io.Writer) int {
	tasks, err := ParseArgs(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// GOMAXPROCS follows the container's CPU limit: the class's cores.
	secrets, err := SolveAll(tasks, runtime.GOMAXPROCS(0))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, x := range secrets {
		fmt.Fprintln(stdout, x)
	}
	return 0
}
