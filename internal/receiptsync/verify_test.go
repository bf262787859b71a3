package receiptsync

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/computehorde/horde/internal/keys"
	r255 "github.com/gtank/ristretto255"
)

func mustKey(t testing.TB, uri string) *keys.Keypair {
	t.Helper()
	kp, err := keys.FromURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestVerifyBatchMatchesKeys checks that batch verification gives keys.PublicKey.Verify's
// answer for every signature, for batches of good signatures and batches with forgeries of
// every kind mixed in.
func TestVerifyBatchMatchesKeys(t *testing.T) {
	signers := []*keys.Keypair{mustKey(t, "//Alice"), mustKey(t, "//Bob"), mustKey(t, "//Charlie"), mustKey(t, "//Dave")}
	type tc struct {
		name string
		make func(i int) sigCheck
	}
	msgOf := func(i int) []byte { return fmt.Appendf(nil, `{"job_uuid": "%d", "ttl": 7}`, i) }
	good := func(i int) sigCheck {
		kp, msg := signers[i%len(signers)], msgOf(i)
		return sigCheck{pub: kp.Public(), sig: kp.Sign(msg), msg: msg}
	}
	// A "signature" under the identity key: R = s·B verifies k·(−A) + s·B == R for any k.
	identityForgery := func(i int) sigCheck {
		var buf [64]byte
		_, _ = rand.Read(buf[:])
		s := r255.NewScalar().FromUniformBytes(buf[:])
		var sig keys.Signature
		r255.NewElement().ScalarBaseMult(s).Encode(sig[:0])
		s.Encode(sig[32:32])
		sig[63] |= 0x80
		return sigCheck{pub: keys.PublicKey{}, sig: sig, msg: msgOf(i)}
	}
	forgeries := map[string]func(i int) sigCheck{
		"flipped R": func(i int) sigCheck { c := good(i); c.sig[3] ^= 1; return c },
		"flipped s": func(i int) sigCheck { c := good(i); c.sig[40] ^= 1; return c },
		"no marker": func(i int) sigCheck { c := good(i); c.sig[63] &^= 0x80; return c },
		"s not canonical": func(i int) sigCheck {
			c := good(i)
			for j := 32; j < 63; j++ {
				c.sig[j] = 0xff
			}
			c.sig[63] = 0xff
			return c
		},
		"other message": func(i int) sigCheck { c := good(i); c.msg = msgOf(i + 1000); return c },
		"other key":     func(i int) sigCheck { c := good(i); c.pub = signers[(i+1)%len(signers)].Public(); return c },
		"undecodable key": func(i int) sigCheck {
			c := good(i)
			for j := range c.pub {
				c.pub[j] = 0xff
			}
			return c
		},
		"identity key": identityForgery,
	}
	cases := []tc{{"all good", good}}
	for name, forge := range forgeries {
		cases = append(cases, tc{"one " + name, func(i int) sigCheck {
			if i == 5 {
				return forge(i)
			}
			return good(i)
		}})
		cases = append(cases, tc{"all " + name, forge})
	}
	// polkadot.js signs "<Bytes>" + msg + "</Bytes>"; keys accepts that, so must the batch.
	cases = append(cases, tc{"wrapped", func(i int) sigCheck {
		c := good(i)
		if i%3 == 0 {
			c.sig = signers[i%len(signers)].Sign([]byte("<Bytes>" + string(c.msg) + "</Bytes>"))
		}
		return c
	}})
	for _, c := range cases {
		for _, n := range []int{1, 2, 17} {
			t.Run(fmt.Sprintf("%s/%d", c.name, n), func(t *testing.T) {
				checks := make([]sigCheck, n)
				for i := range checks {
					checks[i] = c.make(i)
					checks[i].t = messageTranscript(checks[i].msg)
				}
				balanced := verifyBatch(checks)
				allValid := true
				for i, ch := range checks {
					want := ch.pub.Verify(ch.msg, ch.sig)
					if ch.ok != want {
						t.Errorf("signature %d: batch says %v, keys says %v", i, ch.ok, want)
					}
					allValid = allValid && want
				}
				// Wrapped signatures verify, but only one by one.
				if want := allValid && c.name != "wrapped"; balanced != want {
					t.Errorf("batch balanced = %v, want %v", balanced, want)
				}
			})
		}
	}
}

// The identity-key forgery really is one: without the identity check it would verify.
func TestIdentityForgeryNeedsTheCheck(t *testing.T) {
	var buf [64]byte
	_, _ = rand.Read(buf[:])
	s := r255.NewScalar().FromUniformBytes(buf[:])
	r := r255.NewElement().ScalarBaseMult(s)
	k := r255.NewScalar().FromUniformBytes(buf[:]) // any challenge
	if got := r255.NewElement().VarTimeDoubleScalarBaseMult(k, identity, s); got.Equal(r) != 1 {
		t.Fatal("k·0 + s·B != s·B")
	}
}
