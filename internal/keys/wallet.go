package keys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	schnorrkel "github.com/ChainSafe/go-schnorrkel"
)

var (
	// ErrKeyfileEncrypted means a keyfile is encrypted (bittensor's $NACL / $BTWALLET
	// formats, ansible vault or legacy fernet); horde reads only unencrypted hotkey files.
	ErrKeyfileEncrypted = errors.New("keyfile is encrypted")
	// ErrKeyfileMalformed means a keyfile is not a bittensor JSON keyfile or a field in it
	// does not parse.
	ErrKeyfileMalformed = errors.New("malformed keyfile")
	// ErrKeyfileMismatch means a keyfile's public fields do not belong to its secret.
	ErrKeyfileMismatch = errors.New("keyfile is inconsistent")
	// ErrKeyfileExists means WriteHotkey refused to replace an existing keyfile.
	ErrKeyfileExists = errors.New("keyfile already exists")
	// ErrInvalidName means a wallet or hotkey name cannot be used as a file name.
	ErrInvalidName = errors.New("invalid wallet or hotkey name")
)

// maxKeyfileSize bounds what LoadHotkeyFile reads; real keyfiles are under 1 KiB.
const maxKeyfileSize = 64 << 10

// decryptHint tells the operator how to get an unencrypted hotkey file.
const decryptHint = "horde needs an unencrypted hotkey file (bittensor's default for hotkeys): decrypt it with " +
	"bittensor (python -c \"import bittensor_wallet as bw; bw.Wallet(name='WALLET', hotkey='HOTKEY').hotkey_file.decrypt()\") " +
	"or write it again from its mnemonic with `horde wallet import` (or `btcli wallet regen-hotkey --no-use-password`)"

// encryptedMarkers are the prefixes of bittensor's encrypted keyfile formats.
var encryptedMarkers = []string{"$NACL", "$BTWALLET", "$ANSIBLE_VAULT", "gAAAAA"}

// keyfile is bittensor's JSON keyfile, fields in the order bittensor writes them.
type keyfile struct {
	AccountID    *string `json:"accountId"`
	PublicKey    *string `json:"publicKey"`
	PrivateKey   *string `json:"privateKey"`
	SecretPhrase *string `json:"secretPhrase"`
	SecretSeed   *string `json:"secretSeed"`
	SS58Address  *string `json:"ss58Address"`
}

// DefaultWalletsDir returns ~/.bittensor/wallets, bittensor's default wallet directory.
func DefaultWalletsDir() string {
	return expandHome(filepath.Join("~", ".bittensor", "wallets"))
}

// expandHome replaces a leading "~" with the home directory, as bittensor does with
// os.path.expanduser; the path is returned unchanged when there is no home directory.
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~"+string(filepath.Separator)) && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return p
	}
	return filepath.Join(home, p[1:])
}

// HotkeyPath returns <walletsDir>/<wallet>/hotkeys/<hotkey>, with a leading ~ in walletsDir
// expanded. Wallet and hotkey must be plain file names.
func HotkeyPath(walletsDir, wallet, hotkey string) (string, error) {
	if err := checkName("wallet", wallet); err != nil {
		return "", err
	}
	if err := checkName("hotkey", hotkey); err != nil {
		return "", err
	}
	if walletsDir == "" {
		return "", fmt.Errorf("%w: empty wallets directory", ErrInvalidName)
	}
	return filepath.Join(expandHome(walletsDir), wallet, "hotkeys", hotkey), nil
}

func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty %s name", ErrInvalidName, what)
	case name == "." || name == "..", strings.ContainsAny(name, `/\`+"\x00"):
		return fmt.Errorf("%w: %s name %q must be a plain file name", ErrInvalidName, what, name)
	}
	return nil
}

// LoadHotkey loads the unencrypted bittensor hotkey file
// <walletsDir>/<wallet>/hotkeys/<hotkey>; see LoadHotkeyFile.
func LoadHotkey(walletsDir, wallet, hotkey string) (*Keypair, error) {
	path, err := HotkeyPath(walletsDir, wallet, hotkey)
	if err != nil {
		return nil, err
	}
	return LoadHotkeyFile(path)
}

// LoadHotkeyFile loads an unencrypted bittensor JSON keyfile. The secret comes from
// secretSeed, else secretPhrase, else privateKey; the file's publicKey, accountId and
// ss58Address (and a secretPhrase next to a secretSeed) must all match it.
func LoadHotkeyFile(path string) (*Keypair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: opening hotkey file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keys: reading hotkey file %s: %w", path, err)
	}
	if len(data) > maxKeyfileSize {
		return nil, fmt.Errorf("keys: %s: %w: larger than %d bytes", path, ErrKeyfileMalformed, maxKeyfileSize)
	}
	kp, err := parseKeyfile(data)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	return kp, nil
}

func parseKeyfile(data []byte) (*Keypair, error) {
	trimmed := bytes.TrimSpace(data)
	for _, m := range encryptedMarkers {
		if bytes.HasPrefix(trimmed, []byte(m)) {
			return nil, fmt.Errorf("%w; %s", ErrKeyfileEncrypted, decryptHint)
		}
	}
	var kf keyfile
	if !bytes.HasPrefix(trimmed, []byte("{")) || json.Unmarshal(trimmed, &kf) != nil {
		return nil, fmt.Errorf("%w: not a JSON keyfile (if it is encrypted: %s)", ErrKeyfileMalformed, decryptHint)
	}

	// The public fields must agree with each other; the secret must then give that key.
	var (
		want     PublicKey
		wantFrom string
	)
	for _, f := range []struct {
		name string
		val  *string
	}{{"publicKey", kf.PublicKey}, {"accountId", kf.AccountID}, {"ss58Address", kf.SS58Address}} {
		if !present(f.val) {
			continue
		}
		var pub PublicKey
		var perr error
		if f.name == "ss58Address" {
			_, pub, perr = decodeSS58(*f.val)
		} else {
			pub, perr = ParsePublicKeyHex(*f.val)
		}
		if perr != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrKeyfileMalformed, f.name, perr)
		}
		if wantFrom != "" && pub != want {
			return nil, fmt.Errorf("%w: %s is %s but %s is %s", ErrKeyfileMismatch, f.name, pub.SS58(), wantFrom, want.SS58())
		}
		want, wantFrom = pub, f.name
	}

	var (
		kp  *Keypair
		src string
		err error
	)
	switch {
	case present(kf.SecretSeed):
		src = "secretSeed"
		seed, herr := decodeHex0x(*kf.SecretSeed, 32)
		if herr != nil {
			return nil, fmt.Errorf("%w: secretSeed: %v", ErrKeyfileMalformed, herr)
		}
		if kp, err = FromSeed(seed); err != nil {
			return nil, fmt.Errorf("%w: secretSeed: %v", ErrKeyfileMalformed, err)
		}
		if present(kf.SecretPhrase) {
			fromPhrase, perr := fromMnemonic(*kf.SecretPhrase, "")
			if perr != nil {
				return nil, fmt.Errorf("%w: secretPhrase: %v", ErrKeyfileMalformed, perr)
			}
			if fromPhrase.pub != kp.pub {
				return nil, fmt.Errorf("%w: secretPhrase and secretSeed give different keys", ErrKeyfileMismatch)
			}
		}
	case present(kf.SecretPhrase):
		src = "secretPhrase"
		if kp, err = fromMnemonic(*kf.SecretPhrase, ""); err != nil {
			return nil, fmt.Errorf("%w: secretPhrase: %v", ErrKeyfileMalformed, err)
		}
	case present(kf.PrivateKey):
		src = "privateKey"
		sk, herr := decodeHex0x(*kf.PrivateKey, 64)
		if herr != nil {
			return nil, fmt.Errorf("%w: privateKey: %v", ErrKeyfileMalformed, herr)
		}
		if kp, err = fromPrivateKey(sk, want, wantFrom != ""); err != nil {
			return nil, fmt.Errorf("%w: privateKey: %v", ErrKeyfileMalformed, err)
		}
	default:
		return nil, fmt.Errorf("%w: no secretSeed, secretPhrase or privateKey (a public-key-only file such as "+
			"coldkeypub.txt or <hotkey>pub.txt cannot sign)", ErrKeyfileMalformed)
	}

	if wantFrom != "" && want != kp.pub {
		return nil, fmt.Errorf("%w: %s is %s but %s gives %s", ErrKeyfileMismatch, wantFrom, want.SS58(), src, kp.SS58())
	}
	if src != "privateKey" && present(kf.PrivateKey) {
		sk, herr := decodeHex0x(*kf.PrivateKey, 64)
		if herr != nil {
			return nil, fmt.Errorf("%w: privateKey: %v", ErrKeyfileMalformed, herr)
		}
		if !privateKeyMatches(sk, kp) {
			return nil, fmt.Errorf("%w: privateKey does not belong to %s", ErrKeyfileMismatch, src)
		}
	}
	return kp, nil
}

// fromPrivateKey reads a keyfile's 64-byte privateKey. Bittensor writes schnorrkel's
// SecretKey::to_bytes (scalar || nonce); polkadot.js keeps the Ed25519 form, whose scalar is
// 8 times larger (and so never a canonical scalar itself). The first form is used unless it
// is not canonical or only the second gives the expected key.
func fromPrivateKey(b []byte, want PublicKey, haveWant bool) (*Keypair, error) {
	kp, err := fromSecretBytes(b)
	if err == nil && (!haveWant || kp.pub == want) {
		return kp, nil
	}
	var ed [64]byte
	copy(ed[:], b)
	var nonce [32]byte
	copy(nonce[:], b[32:])
	alt, aerr := newKeypair(schnorrkel.NewSecretKeyFromEd25519Bytes(ed), nonce)
	if aerr == nil && (err != nil || alt.pub == want) {
		return alt, nil
	}
	return kp, err
}

// privateKeyMatches reports whether a keyfile's privateKey holds kp's secret scalar, in
// either form fromPrivateKey accepts. The nonce half is not part of the key.
func privateKeyMatches(b []byte, kp *Keypair) bool {
	key := kp.sk.Encode()
	if bytes.Equal(b[:32], key[:]) {
		return true
	}
	var ed [64]byte
	copy(ed[:], b)
	return schnorrkel.NewSecretKeyFromEd25519Bytes(ed).Encode() == key
}

func present(s *string) bool { return s != nil && *s != "" }

// WriteHotkey writes kp as the unencrypted bittensor hotkey file
// <walletsDir>/<wallet>/hotkeys/<hotkey> plus <hotkey>pub.txt next to it, and returns the
// keyfile's path. It never replaces an existing keyfile (ErrKeyfileExists); see
// WriteHotkeyFile. mnemonic, when not empty, is stored as secretPhrase and must give kp.
func WriteHotkey(walletsDir, wallet, hotkey string, kp *Keypair, mnemonic string) (string, error) {
	path, err := HotkeyPath(walletsDir, wallet, hotkey)
	if err != nil {
		return "", err
	}
	return path, WriteHotkeyFile(path, kp, mnemonic, false)
}

// WriteHotkeyFile writes kp as an unencrypted bittensor JSON keyfile at path (mode 0600,
// missing parent directories created 0700), atomically through a temporary file, and the
// public part as path+"pub.txt" (mode 0644), as bittensor does for hotkeys. Without
// overwrite it fails with ErrKeyfileExists when path exists. mnemonic, when not empty, is
// stored as secretPhrase and must give kp. A key whose derivation path ends in a soft
// junction has no seed, so its file holds only privateKey.
func WriteHotkeyFile(path string, kp *Keypair, mnemonic string, overwrite bool) error {
	if kp == nil || kp.sk == nil {
		return errors.New("keys: WriteHotkeyFile: nil keypair")
	}
	kf := publicKeyfile(kp.pub)
	priv := "0x" + hex.EncodeToString(kp.secretBytes())
	kf.PrivateKey = &priv
	if mnemonic != "" {
		fromPhrase, err := fromMnemonic(mnemonic, "")
		if err != nil {
			return fmt.Errorf("keys: mnemonic to store: %w", err)
		}
		if fromPhrase.pub != kp.pub {
			return fmt.Errorf("keys: %w: the mnemonic does not give this keypair", ErrKeyfileMismatch)
		}
		normalized := strings.Join(strings.Fields(mnemonic), " ")
		kf.SecretPhrase = &normalized
	}
	if kp.hasSeed {
		seed := "0x" + hex.EncodeToString(kp.seed[:])
		kf.SecretSeed = &seed
	}
	secret, err := json.Marshal(kf)
	if err != nil {
		return fmt.Errorf("keys: encoding keyfile: %w", err)
	}
	public, err := json.Marshal(publicKeyfile(kp.pub))
	if err != nil {
		return fmt.Errorf("keys: encoding public keyfile: %w", err)
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keys: creating wallet directory: %w", err)
	}
	if err := writeAtomic(path, secret, 0o600, overwrite); err != nil {
		return err
	}
	// The pub file is derived data: always bring it in line with the keyfile just written.
	return writeAtomic(path+"pub.txt", public, 0o644, true)
}

// publicKeyfile is the public-only keyfile bittensor writes to <hotkey>pub.txt.
func publicKeyfile(p PublicKey) keyfile {
	pubHex, ss58 := p.Hex(), p.SS58()
	return keyfile{AccountID: &pubHex, PublicKey: &pubHex, SS58Address: &ss58}
}

// writeAtomic writes data to a temporary file in path's directory, syncs it and moves it to
// path: by rename when overwrite is set, else by hard link, which fails if path exists.
func writeAtomic(path string, data []byte, perm fs.FileMode, overwrite bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if !overwrite {
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("keys: %s: %w (pass overwrite to replace it)", path, ErrKeyfileExists)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		os.Remove(tmpName) // after a rename this is a no-op; after a link it drops the temp name
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		tmp = nil
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	tmp = nil
	if overwrite {
		err = os.Rename(tmpName, path)
	} else {
		err = os.Link(tmpName, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keys: %s: %w (pass overwrite to replace it)", path, ErrKeyfileExists)
		}
		if err != nil {
			// Filesystems without hard links: fall back to a checked rename.
			if _, serr := os.Lstat(path); serr == nil {
				return fmt.Errorf("keys: %s: %w (pass overwrite to replace it)", path, ErrKeyfileExists)
			}
			err = os.Rename(tmpName, path)
		}
	}
	if err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
