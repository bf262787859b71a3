package keys

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/base58"
	"golang.org/x/crypto/blake2b"
)

// SS58Prefix is the SS58 network prefix Bittensor uses (generic Substrate, 42).
const SS58Prefix = 42

var ss58Pre = []byte("SS58PRE")

var (
	// ErrInvalidAddress is wrapped by every SS58 decoding error.
	ErrInvalidAddress = errors.New("invalid SS58 address")
	// ErrAddressEncoding means the address is empty or not base58.
	ErrAddressEncoding = errors.New("not base58")
	// ErrAddressLength means the address does not hold a 32-byte account id.
	ErrAddressLength = errors.New("wrong length")
	// ErrAddressChecksum means the checksum does not match (a mistyped address).
	ErrAddressChecksum = errors.New("bad checksum")
	// ErrAddressPrefix means the address is valid for another network prefix than 42.
	ErrAddressPrefix = errors.New("wrong network prefix")
)

// ParsePublicKey decodes an SS58 address with prefix 42 into a public key. Errors wrap
// ErrInvalidAddress and one of ErrAddressEncoding, ErrAddressLength, ErrAddressChecksum or
// ErrAddressPrefix.
func ParsePublicKey(ss58 string) (PublicKey, error) {
	prefix, pub, err := decodeSS58(ss58)
	if err != nil {
		return PublicKey{}, err
	}
	if prefix != SS58Prefix {
		return PublicKey{}, fmt.Errorf("%w: %w: network prefix %d, want %d (Bittensor / generic Substrate)",
			ErrInvalidAddress, ErrAddressPrefix, prefix, SS58Prefix)
	}
	return pub, nil
}

// encodeSS58 returns base58(prefix || pub || blake2b-512("SS58PRE" || prefix || pub)[:2]).
func encodeSS58(prefix uint16, pub PublicKey) string {
	var buf []byte
	if prefix < 64 {
		buf = append(buf, byte(prefix))
	} else {
		// Two-byte form of the SS58 spec: 0b01 marker, then the 14-bit identifier.
		buf = append(buf, byte((prefix&0xfc)>>2)|0x40, byte(prefix>>8)|byte((prefix&0x03)<<6))
	}
	buf = append(buf, pub[:]...)
	sum := ss58Checksum(buf)
	return base58.Encode(append(buf, sum[:2]...))
}

// decodeSS58 decodes an address with any valid prefix holding a 32-byte account id.
func decodeSS58(s string) (uint16, PublicKey, error) {
	var pub PublicKey
	if s == "" {
		return 0, pub, fmt.Errorf("%w: %w: empty", ErrInvalidAddress, ErrAddressEncoding)
	}
	raw := base58.Decode(s)
	if len(raw) == 0 {
		return 0, pub, fmt.Errorf("%w: %w", ErrInvalidAddress, ErrAddressEncoding)
	}
	var prefix uint16
	var prefixLen int
	switch b0 := raw[0]; {
	case b0 < 64:
		prefix, prefixLen = uint16(b0), 1
	case b0 < 128:
		if len(raw) < 2 {
			return 0, pub, fmt.Errorf("%w: %w: %d bytes", ErrInvalidAddress, ErrAddressLength, len(raw))
		}
		lower := (b0&0x3f)<<2 | raw[1]>>6
		upper := raw[1] & 0x3f
		prefix, prefixLen = uint16(lower)|uint16(upper)<<8, 2
	default:
		return 0, pub, fmt.Errorf("%w: %w: reserved prefix byte", ErrInvalidAddress, ErrAddressPrefix)
	}
	if want := prefixLen + len(pub) + 2; len(raw) != want {
		return 0, pub, fmt.Errorf("%w: %w: %d bytes, want %d (prefix, 32-byte account id, 2-byte checksum)",
			ErrInvalidAddress, ErrAddressLength, len(raw), want)
	}
	body := raw[:len(raw)-2]
	sum := ss58Checksum(body)
	if !bytes.Equal(sum[:2], raw[len(raw)-2:]) {
		return 0, pub, fmt.Errorf("%w: %w", ErrInvalidAddress, ErrAddressChecksum)
	}
	copy(pub[:], body[prefixLen:])
	return prefix, pub, nil
}

func ss58Checksum(body []byte) [64]byte {
	h, _ := blake2b.New512(nil)
	h.Write(ss58Pre)
	h.Write(body)
	var sum [64]byte
	h.Sum(sum[:0])
	return sum
}
