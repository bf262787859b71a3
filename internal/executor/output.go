package executor

import (
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// TruncateOutput applies upstream's message cap to s: a text of more than MaxOutputChars
// characters becomes its first MaxOutputChars/2 characters, " ... ", and its last
// MaxOutputChars/2 characters. Characters are runes (Python str indices); an invalid UTF-8 byte
// counts as one.
func TruncateOutput(s string) string {
	if len(s) <= MaxOutputChars || utf8.RuneCountInString(s) <= MaxOutputChars {
		return s
	}
	return firstRunes(s, MaxOutputChars/2) + " ... " + lastRunes(s, MaxOutputChars/2)
}

// ReadOutputFile returns TruncateOutput of the file at path without reading more than a few
// megabytes of it, however large it is.
func ReadOutputFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	// A rune is at most utf8.UTFMax bytes, so a file this small may still fit under the cap
	// and is read whole; a larger one certainly exceeds it.
	const window = utf8.UTFMax * (MaxOutputChars / 2)
	if info.Size() <= 2*window {
		b, err := io.ReadAll(f)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		return TruncateOutput(string(b)), nil
	}
	head := make([]byte, window)
	if _, err := io.ReadFull(f, head); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	tail := make([]byte, window)
	if _, err := f.ReadAt(tail, info.Size()-window); err != nil && err != io.EOF {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	// Drop a partial rune at the start of the tail window.
	for i := 0; i < utf8.UTFMax-1 && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	return firstRunes(string(head), MaxOutputChars/2) + " ... " + lastRunes(string(tail), MaxOutputChars/2), nil
}

func firstRunes(s string, n int) string {
	i := 0
	for n > 0 && i < len(s) {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n--
	}
	return s[:i]
}

func lastRunes(s string, n int) string {
	i := len(s)
	for n > 0 && i > 0 {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
		n--
	}
	return s[i:]
}
