// Package keys holds Bittensor hotkey cryptography: sr25519 (schnorrkel) keypairs, signatures
// and SS58 addresses, Substrate secret URIs (//Alice, mnemonics with derivation paths, raw
// seeds), and the unencrypted hotkey files that the Python bittensor wallet keeps under
// ~/.bittensor/wallets.
//
// Signatures use the signing context "substrate", like polkadot.js, subkey and bittensor.
// Verification also accepts a signature over the polkadot.js `<Bytes>…</Bytes>` wrapping of
// the message, which is what browser extensions sign. Signing is randomised, so two
// signatures of the same message differ; verify them, never compare them. As in Rust
// schnorrkel, the nonce is hedged: derived from the transcript, the key's secret nonce and
// fresh randomness, so a broken random source cannot leak the secret key.
//
// Key expansion and derivation use go-schnorrkel. Signing and verifying are written out in
// schnorr.go on the same ristretto255 package and a merlin transcript (transcript.go, on the
// STROBE package under gtank/merlin), so that a Keypair signs with its cached scalar and
// public key and a verifier decodes each hotkey once (a bounded cache); tests check them
// against go-schnorrkel, polkadot.js and subkey signatures.
//
// Secrets never leave a Keypair except through WriteHotkey / WriteHotkeyFile, and no error
// message or String method in this package prints a secret, a mnemonic word or a signature
// given as input.
package keys
