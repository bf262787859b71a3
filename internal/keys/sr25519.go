package keys

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
	r255 "github.com/gtank/ristretto255"
)

// SigningContext is the schnorrkel signing context Substrate, polkadot.js and bittensor use.
const SigningContext = "substrate"

var signingContext = []byte(SigningContext)

// The polkadot.js wrapping that browser extensions put around a message before signing it.
var (
	bytesPrefix = []byte("<Bytes>")
	bytesSuffix = []byte("</Bytes>")
)

var (
	// ErrBadSignature means a well-formed signature does not verify for the key and message.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrMalformedSignature means a signature string is not "0x" followed by 128 hex digits.
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrInvalidKey means bytes that should hold a key do not (wrong length, not hex, not a
	// valid sr25519 scalar or point).
	ErrInvalidKey = errors.New("invalid key")
)

// PublicKey is an sr25519 public key (a Bittensor hotkey or coldkey account id).
type PublicKey [32]byte

// SS58 returns the key's SS58 address with the generic Substrate prefix 42, which Bittensor
// uses.
func (p PublicKey) SS58() string { return encodeSS58(SS58Prefix, p) }

// String returns the SS58 address.
func (p PublicKey) String() string { return p.SS58() }

// Hex returns "0x" followed by the 64 lowercase hex digits of the key (a keyfile's publicKey
// and accountId fields).
func (p PublicKey) Hex() string { return "0x" + hex.EncodeToString(p[:]) }

// ParsePublicKeyHex parses "0x" followed by 64 hex digits (the "0x" is optional).
func ParsePublicKeyHex(s string) (PublicKey, error) {
	var p PublicKey
	b, err := decodeHex0x(s, len(p))
	if err != nil {
		return p, fmt.Errorf("%w: public key: %v", ErrInvalidKey, err)
	}
	copy(p[:], b)
	return p, nil
}

// Verify reports whether sig is a valid signature of msg by p, in the "substrate" signing
// context. It accepts a signature over msg itself and one over the polkadot.js wrapping
// "<Bytes>" + msg + "</Bytes>".
func (p PublicKey) Verify(msg []byte, sig Signature) bool {
	negA, ok := p.decoded()
	if !ok {
		return false
	}
	s, ok := sigScalar(&sig)
	if !ok {
		return false
	}
	if schnorrVerifyScalar(negA, &p, msg, &sig, s) {
		return true
	}
	if bytes.HasPrefix(msg, bytesPrefix) && bytes.HasSuffix(msg, bytesSuffix) {
		return false // already wrapped; polkadot.js does not wrap twice
	}
	wrapped := make([]byte, 0, len(bytesPrefix)+len(msg)+len(bytesSuffix))
	wrapped = append(append(append(wrapped, bytesPrefix...), msg...), bytesSuffix...)
	return schnorrVerifyScalar(negA, &p, wrapped, &sig, s)
}

// decoded returns the negated ristretto point of p from a bounded process-wide cache, so
// that verifying many signatures by the same hotkey decodes it once.
func (p PublicKey) decoded() (*r255.Element, bool) {
	if v, ok := pubCache.m.Load(p); ok {
		return v.(*r255.Element), true
	}
	negA, ok := decodeNegated(p)
	if !ok {
		return nil, false
	}
	cachePublic(p, negA)
	return negA, true
}

// pubCacheMax bounds the decoded-key cache; a subnet has at most a few thousand hotkeys.
const pubCacheMax = 4096

var pubCache struct {
	m sync.Map // PublicKey -> *r255.Element (−A); never mutated once stored
	n atomic.Int64
}

func cachePublic(p PublicKey, negA *r255.Element) {
	if pubCache.n.Add(1) > pubCacheMax {
		pubCache.m.Clear()
		pubCache.n.Store(1)
	}
	pubCache.m.Store(p, negA)
}

// Signature is a 64-byte sr25519 signature.
type Signature [64]byte

// Hex returns "0x" followed by 128 lowercase hex digits, the form ComputeHorde puts on the
// wire.
func (s Signature) Hex() string { return "0x" + hex.EncodeToString(s[:]) }

// String returns Hex().
func (s Signature) String() string { return s.Hex() }

// ParseSignature parses "0x" followed by exactly 128 hex digits (upper or lower case). Its
// errors wrap ErrMalformedSignature and name the cause without echoing the input.
func ParseSignature(hex0x string) (Signature, error) {
	var s Signature
	if !strings.HasPrefix(hex0x, "0x") {
		return s, fmt.Errorf("%w: missing 0x prefix", ErrMalformedSignature)
	}
	digits := hex0x[2:]
	if len(digits) != 2*len(s) {
		return s, fmt.Errorf("%w: %d hex digits after 0x, want %d (64 bytes)", ErrMalformedSignature, len(digits), 2*len(s))
	}
	if _, err := hex.Decode(s[:], []byte(digits)); err != nil {
		return Signature{}, fmt.Errorf("%w: not hexadecimal", ErrMalformedSignature)
	}
	return s, nil
}

// Verify parses an SS58 address (prefix 42) and a "0x" hex signature and verifies the
// signature of msg. It returns nil when the signature is valid, an error wrapping
// ErrInvalidAddress or ErrMalformedSignature when an input does not parse, and
// ErrBadSignature when the signature does not verify.
func Verify(ss58 string, msg []byte, sigHex0x string) error {
	pub, err := ParsePublicKey(ss58)
	if err != nil {
		return err
	}
	sig, err := ParseSignature(sigHex0x)
	if err != nil {
		return err
	}
	if !pub.Verify(msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// Keypair is an sr25519 keypair. The secret stays inside: String and GoString print only the
// SS58 address. A Keypair is safe for concurrent use.
type Keypair struct {
	sk    *schnorrkel.SecretKey
	x     *r255.Scalar // sk's scalar, decoded once for signing
	nonce [32]byte     // the secret key's nonce half, mixed into signing nonces and kept for the keyfile's privateKey
	pub   PublicKey    // compressed public key
	// seed is the 32-byte mini secret (the keyfile's secretSeed), when the key has one: every
	// key except one whose derivation path ends in a soft junction.
	seed    [32]byte
	hasSeed bool
}

// FromSeed returns the keypair of a 32-byte mini secret key (a Bittensor keyfile's
// secretSeed, or the "Secret seed" subkey prints), expanded Ed25519-style like Substrate.
func FromSeed(seed []byte) (*Keypair, error) {
	if len(seed) != schnorrkel.MiniSecretKeySize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidKey, len(seed), schnorrkel.MiniSecretKeySize)
	}
	var raw [32]byte
	copy(raw[:], seed)
	return fromMiniSecret(raw)
}

func fromMiniSecret(raw [32]byte) (*Keypair, error) {
	msk, err := schnorrkel.NewMiniSecretKeyFromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	// ExpandEd25519 takes the nonce from the second half of SHA-512(seed); schnorrkel has no
	// getter for it, so it is recomputed here for export.
	h := sha512.Sum512(raw[:])
	var nonce [32]byte
	copy(nonce[:], h[32:])
	kp, err := newKeypair(msk.ExpandEd25519(), nonce)
	if err != nil {
		return nil, err
	}
	kp.seed, kp.hasSeed = raw, true
	return kp, nil
}

// fromSecretBytes builds a keypair from 64 bytes key||nonce, schnorrkel's SecretKey::to_bytes
// form (a keyfile's privateKey).
func fromSecretBytes(b []byte) (*Keypair, error) {
	if len(b) != 64 {
		return nil, fmt.Errorf("%w: secret key is %d bytes, want 64", ErrInvalidKey, len(b))
	}
	var key, nonce [32]byte
	copy(key[:], b[:32])
	copy(nonce[:], b[32:])
	return newKeypair(schnorrkel.NewSecretKey(key, nonce), nonce)
}

// newKeypair decodes the secret scalar and computes the public key once, so that signing
// and verifying pay no per-call key decoding.
func newKeypair(sk *schnorrkel.SecretKey, nonce [32]byte) (*Keypair, error) {
	key := sk.Encode()
	x := r255.NewScalar()
	if x.Decode(key[:]) != nil {
		return nil, fmt.Errorf("%w: secret key is not a canonical scalar", ErrInvalidKey)
	}
	a := r255.NewElement().ScalarBaseMult(x)
	if a.Equal(identity) == 1 {
		return nil, fmt.Errorf("%w: secret key is zero", ErrInvalidKey)
	}
	var pub PublicKey
	a.Encode(pub[:0])
	cachePublic(pub, r255.NewElement().Negate(a))
	return &Keypair{sk: sk, x: x, nonce: nonce, pub: pub}, nil
}

// Public returns the public key.
func (k *Keypair) Public() PublicKey { return k.pub }

// SS58 returns the SS58 address (prefix 42) of the public key.
func (k *Keypair) SS58() string { return k.pub.SS58() }

// String returns the SS58 address; it never prints the secret.
func (k *Keypair) String() string { return k.pub.SS58() }

// GoString keeps %#v from printing the secret.
func (k *Keypair) GoString() string { return "keys.Keypair{" + k.pub.SS58() + "}" }

// Sign signs msg in the "substrate" signing context. Signatures are randomised, and hedged as
// in schnorrkel: the nonce also depends on the key and the message, so a broken random source
// cannot leak the secret key.
func (k *Keypair) Sign(msg []byte) Signature { return k.sign(msg, rand.Reader) }

// secretBytes returns key||nonce, the keyfile's privateKey.
func (k *Keypair) secretBytes() []byte {
	key := k.sk.Encode()
	return append(key[:], k.nonce[:]...)
}

// randomNonce returns a fresh secret-key nonce for soft-derived keys, as Rust schnorrkel
// does. It changes neither the public key nor which signatures verify: signing mixes it into
// each signature's nonce as a hedge against a bad random source.
func randomNonce() [32]byte {
	var n [32]byte
	_, _ = rand.Read(n[:]) // crypto/rand.Read never fails
	return n
}

// decodeHex0x decodes hex with an optional "0x" prefix into exactly n bytes.
func decodeHex0x(s string, n int) ([]byte, error) {
	s = strings.TrimPrefix(s, "0x")
	if len(s) != 2*n {
		return nil, fmt.Errorf("%d hex digits, want %d (%d bytes)", len(s), 2*n, n)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("not hexadecimal")
	}
	return b, nil
}
