package hwclass

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/computehorde/horde/internal/protocol"
)

// MaxCommitmentBytes is the most a miner's whole commitment may hold
// (upstream's MAX_MANIFEST_COMMITMENT_BYTES).
const MaxCommitmentBytes = 128

// The manifest envelope in a commitment: "<M:" payload ">".
const (
	envelopeOpen  = "<M:"
	envelopeClose = ">"
)

// shortCodes maps class names to manifest codes and back. They are fixed by
// upstream, so configuration cannot change them.
var nameToShort, shortToName = shortCodes()

func shortCodes() (toShort map[protocol.ExecutorClass]string, toName map[string]protocol.ExecutorClass) {
	toShort, toName = map[protocol.ExecutorClass]string{}, map[string]protocol.ExecutorClass{}
	for _, c := range defaultClasses {
		toShort[c.Name] = c.Short
		toName[c.Short] = c.Name
	}
	return toShort, toName
}

// FormatManifest returns m's envelope for a commitment: `<M:` then
// `<code><count>` pairs joined by ';' in short-code order, then `>`, e.g.
// {S: 2, A: 3} gives "<M:A3;S2>" and an empty manifest "<M:>" (which
// upstream reads as "pause"). Zero counts are kept. An unknown class or a
// negative count is an error, and so is an envelope longer than
// MaxCommitmentBytes.
func FormatManifest(m protocol.Manifest) (string, error) {
	type pair struct {
		code  string
		count int
	}
	pairs := make([]pair, 0, len(m))
	for _, e := range m {
		name, count := e.Class, e.Count
		code, ok := nameToShort[name]
		if !ok {
			return "", fmt.Errorf("hwclass: manifest: unknown executor class %q; valid classes: %s", name, Default().namesText())
		}
		if count < 0 {
			return "", fmt.Errorf("hwclass: manifest: class %s has count %d; counts are >= 0", name, count)
		}
		pairs = append(pairs, pair{code, count})
	}
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.code, b.code) })
	var b strings.Builder
	b.WriteString(envelopeOpen)
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(p.code)
		b.WriteString(strconv.Itoa(p.count))
	}
	b.WriteString(envelopeClose)
	if b.Len() > MaxCommitmentBytes {
		return "", fmt.Errorf("hwclass: manifest envelope is %d bytes, more than %d; offer fewer classes", b.Len(), MaxCommitmentBytes)
	}
	return b.String(), nil
}

// ParseManifest reads the first manifest envelope in a commitment. found is
// false when there is none. Like upstream, it is lenient: fragments shorter
// than two characters, unknown codes and counts that are not non-negative
// integers are skipped, and a code given twice keeps its last count. An
// envelope with nothing valid inside gives an empty manifest.
func ParseManifest(commitment string) (m protocol.Manifest, found bool) {
	payload, _, found := findEnvelope(commitment)
	if !found {
		return protocol.Manifest{}, false
	}
	m = protocol.Manifest{}
	for frag := range strings.SplitSeq(payload, ";") {
		frag = strings.TrimSpace(frag)
		if len(frag) < 2 {
			continue
		}
		name, ok := shortToName[frag[:1]]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(frag[1:]))
		if err != nil || n < 0 {
			continue
		}
		m.Set(name, n)
	}
	return m, true
}

// MergeManifest returns commitment with every manifest envelope removed,
// surrounding spaces trimmed, and m's envelope appended at the end, as
// upstream's miner writes it. It is an error if the result is longer than
// MaxCommitmentBytes.
func MergeManifest(commitment string, m protocol.Manifest) (string, error) {
	env, err := FormatManifest(m)
	if err != nil {
		return "", err
	}
	var other strings.Builder
	rest := commitment
	for {
		_, span, ok := findEnvelope(rest)
		if !ok {
			other.WriteString(rest)
			break
		}
		other.WriteString(rest[:span[0]])
		rest = rest[span[1]:]
	}
	out := strings.TrimSpace(other.String()) + env
	if len(out) > MaxCommitmentBytes {
		return "", fmt.Errorf("hwclass: commitment would be %d bytes, more than %d; shorten the data beside the manifest", len(out), MaxCommitmentBytes)
	}
	return out, nil
}

// findEnvelope finds the first "<M:...>" with no '>' inside (the regexp
// `<M:([^>]*)>`), returning its payload and byte span.
func findEnvelope(s string) (payload string, span [2]int, ok bool) {
	i := strings.Index(s, envelopeOpen)
	if i < 0 {
		return "", span, false
	}
	j := strings.Index(s[i+len(envelopeOpen):], envelopeClose)
	if j < 0 {
		return "", span, false
	}
	start := i + len(envelopeOpen)
	return s[start : start+j], [2]int{i, start + j + 1}, true
}
