package keys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
	bip39 "github.com/cosmos/go-bip39"
	"golang.org/x/crypto/blake2b"
)

// DevPhrase is Substrate's public development mnemonic; "//Alice" is DevPhrase + "//Alice".
// Keys derived from it are known to everyone and must never hold value.
const DevPhrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"

var (
	// ErrInvalidURI is wrapped by errors about the shape of a secret URI.
	ErrInvalidURI = errors.New("invalid secret URI")
	// ErrInvalidMnemonic is wrapped by errors about a mnemonic phrase (word count, unknown
	// word, checksum). The errors give word positions, never the words.
	ErrInvalidMnemonic = errors.New("invalid mnemonic")
)

// NewMnemonic returns a fresh random 12-word BIP-39 English mnemonic.
func NewMnemonic() (string, error) {
	entropy, err := bip39.NewEntropy(128)
	if err != nil {
		return "", fmt.Errorf("keys: generating entropy: %w", err)
	}
	return bip39.NewMnemonic(entropy)
}

// FromURI returns the keypair of a Substrate secret URI, as subkey and polkadot.js read it:
//
//	//Alice                       dev phrase, hard junction "Alice"
//	<mnemonic>                    12–24 BIP-39 English words (substrate-bip39 seed)
//	<mnemonic>//hard/soft//hard   derivation path: // hard junction, / soft junction
//	<mnemonic>///password         password for the mnemonic (after the path, if any)
//	0x<64 hex digits>             raw 32-byte mini secret (secretSeed), path allowed
//
// A junction that parses as a decimal u64 is encoded as that number, any other as a string,
// as in Substrate. Errors wrap ErrInvalidURI or ErrInvalidMnemonic and do not echo secrets.
func FromURI(uri string) (*Keypair, error) {
	if strings.TrimSpace(uri) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidURI)
	}
	rest, password, hasPassword := strings.Cut(uri, "///")
	phrase, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		phrase, path = rest[:i], rest[i:]
	}
	junctions, err := parsePath(path)
	if err != nil {
		return nil, err
	}

	var kp *Keypair
	switch {
	case strings.HasPrefix(phrase, "0x"):
		if hasPassword {
			return nil, fmt.Errorf("%w: a password (///) only applies to a mnemonic, not to a raw 0x seed", ErrInvalidURI)
		}
		seed, err := decodeHex0x(phrase, schnorrkel.MiniSecretKeySize)
		if err != nil {
			return nil, fmt.Errorf("%w: raw seed: %v", ErrInvalidURI, err)
		}
		kp, err = FromSeed(seed)
		if err != nil {
			return nil, err
		}
	case strings.TrimSpace(phrase) == "":
		if kp, err = fromMnemonic(DevPhrase, password); err != nil {
			return nil, err
		}
	default:
		if kp, err = fromMnemonic(phrase, password); err != nil {
			return nil, err
		}
	}
	for _, j := range junctions {
		if kp, err = kp.derive(j); err != nil {
			return nil, err
		}
	}
	return kp, nil
}

// fromMnemonic validates a BIP-39 English mnemonic and returns its substrate-bip39 keypair:
// the mini secret is PBKDF2-SHA512(entropy, "mnemonic"+password, 2048)[:32].
func fromMnemonic(phrase, password string) (*Keypair, error) {
	words := strings.Fields(phrase)
	switch len(words) {
	case 12, 15, 18, 21, 24:
	default:
		w := "words"
		if len(words) == 1 {
			w = "word"
		}
		return nil, fmt.Errorf("%w: %d %s, want 12, 15, 18, 21 or 24 (a secret URI is a mnemonic, "+
			"a 0x-prefixed 32-byte hex seed or a dev key such as //Alice)", ErrInvalidMnemonic, len(words), w)
	}
	for i, w := range words {
		if _, ok := bip39.ReverseWordMap[w]; !ok {
			return nil, fmt.Errorf("%w: word %d is not in the BIP-39 English word list", ErrInvalidMnemonic, i+1)
		}
	}
	normalized := strings.Join(words, " ")
	if _, err := bip39.MnemonicToByteArray(normalized); err != nil {
		return nil, fmt.Errorf("%w: checksum does not match (a word is probably mistyped)", ErrInvalidMnemonic)
	}
	msk, err := schnorrkel.MiniSecretKeyFromMnemonic(normalized, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMnemonic, err)
	}
	return fromMiniSecret(msk.Encode())
}

// junction is one step of a derivation path.
type junction struct {
	hard bool
	cc   [32]byte // chain code: SCALE encoding of the name, zero-padded or blake2b-256 hashed
}

// parsePath splits "//a/b//c" into junctions; each needs a non-empty name.
func parsePath(path string) ([]junction, error) {
	var out []junction
	for path != "" {
		if path[0] != '/' {
			// Unreachable with FromURI's split, kept for safety.
			return nil, fmt.Errorf("%w: derivation path must start with /", ErrInvalidURI)
		}
		path = path[1:]
		hard := strings.HasPrefix(path, "/")
		if hard {
			path = path[1:]
		}
		name := path
		if i := strings.IndexByte(path, '/'); i >= 0 {
			name, path = path[:i], path[i:]
		} else {
			path = ""
		}
		if name == "" {
			return nil, fmt.Errorf("%w: empty junction in derivation path (junction %d)", ErrInvalidURI, len(out)+1)
		}
		out = append(out, junction{hard: hard, cc: junctionChainCode(name)})
	}
	return out, nil
}

// junctionChainCode encodes a junction name like Substrate's DeriveJunction: a name that
// Rust's u64::from_str accepts becomes its 8-byte little-endian SCALE encoding, any other a
// compact-length-prefixed string; an encoding longer than 32 bytes is blake2b-256 hashed.
func junctionChainCode(name string) [32]byte {
	var enc []byte
	digits := name
	if len(digits) > 1 && digits[0] == '+' {
		digits = digits[1:]
	}
	if n, err := strconv.ParseUint(digits, 10, 64); err == nil {
		enc = binary.LittleEndian.AppendUint64(nil, n)
	} else {
		enc = appendCompact(nil, uint64(len(name)))
		enc = append(enc, name...)
	}
	var cc [32]byte
	if len(enc) > len(cc) {
		return blake2b.Sum256(enc)
	}
	copy(cc[:], enc)
	return cc
}

// appendCompact appends the SCALE compact encoding of n.
func appendCompact(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n<<2))
	case n < 1<<14:
		return binary.LittleEndian.AppendUint16(b, uint16(n<<2|1))
	case n < 1<<30:
		return binary.LittleEndian.AppendUint32(b, uint32(n<<2|2))
	default:
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], n)
		size := 8
		for size > 4 && le[size-1] == 0 {
			size--
		}
		b = append(b, byte(size-4)<<2|3)
		return append(b, le[:size]...)
	}
}

// derive applies one junction. Hard junctions give a new mini secret (HDKD-hard, then the
// Ed25519-style expansion); soft junctions add a scalar to the secret key, so the child's
// public key can also be derived from the parent's public key, and the child has no seed.
func (k *Keypair) derive(j junction) (*Keypair, error) {
	if j.hard {
		msk, _, err := k.sk.HardDeriveMiniSecretKey([]byte{}, j.cc)
		if err != nil {
			return nil, fmt.Errorf("keys: hard derivation: %w", err)
		}
		return fromMiniSecret(msk.Encode())
	}
	ek, err := schnorrkel.DeriveKeySimple(k.sk, []byte{}, j.cc)
	if err != nil {
		return nil, fmt.Errorf("keys: soft derivation: %w", err)
	}
	child, err := ek.Secret()
	if err != nil {
		return nil, fmt.Errorf("keys: soft derivation: %w", err)
	}
	// schnorrkel picks a random nonce it does not expose; pick our own so it can be exported.
	nonce := randomNonce()
	return newKeypair(schnorrkel.NewSecretKey(child.Encode(), nonce), nonce)
}
