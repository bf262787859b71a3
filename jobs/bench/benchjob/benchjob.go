// Package benchjob is the validators' benchmark task: find the secret number behind a hash
// in a given search space. The validator picks the secret, so it knows the answer and checks
// it for free; the search costs the miner's hardware time in proportion to the space, which
// the validator scales by class. Same task, same code: the measured time compares machines.
package benchjob

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Task is one benchmark: find x in [0, Space) with sha256(Salt ‖ x as 8 bytes big-endian) = Hash.
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

// ErrNotFound reports a task whose secret is not in its space.
var ErrNotFound = errors.New("benchjob: no number in the search space has this hash")

// Solve searches the whole space in order.
func Solve(t Task) (uint64, error) {
	buf := make([]byte, len(t.Salt)+8)
	copy(buf, t.Salt)
	for x := uint64(0); x < t.Space; x++ {
		binary.BigEndian.PutUint64(buf[len(t.Salt):], x)
		if sha256.Sum256(buf) == t.Hash {
			return x, nil
		}
	}
	return 0, ErrNotFound
}

// Main is the program: --salt HEX --hash HEX --space N; it prints the secret on stdout.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	salt := fs.String("salt", "", "hex salt")
	hash := fs.String("hash", "", "hex sha256 to find the secret of")
	space := fs.Uint64("space", 0, "the secret is below this")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	t := Task{Space: *space}
	var err error
	if t.Salt, err = hex.DecodeString(*salt); err != nil {
		fmt.Fprintln(stderr, "bench: --salt is not hex")
		return 2
	}
	h, err := hex.DecodeString(*hash)
	if err != nil || len(h) != len(t.Hash) {
		fmt.Fprintln(stderr, "bench: --hash is not 32 bytes of hex")
		return 2
	}
	copy(t.Hash[:], h)
	x, err := Solve(t)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, x)
	return 0
}
