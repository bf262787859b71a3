package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/computehorde/horde/internal/keys"
)

// walletsDirEnv overrides the default wallets directory (~/.bittensor/wallets).
const walletsDirEnv = "HORDE_WALLETS_DIR"

// walletStdin is where `wallet inspect -` reads the secret URI; tests replace it.
var walletStdin io.Reader = os.Stdin

const walletHelp = `Usage: horde wallet <command> [flags]

Bittensor hotkeys, in the unencrypted JSON files bittensor keeps under
<wallets-dir>/<wallet>/hotkeys/<hotkey>.

Commands:
  inspect URI   print the public key and SS58 address of a secret URI:
                //Alice, a mnemonic, "<mnemonic>//hard/soft", "<mnemonic>///password"
                or a 0x-prefixed 32-byte seed; "-" reads the URI from standard input
  new           create a hotkey from a fresh 12-word mnemonic and print the mnemonic
  import        write a hotkey file from an existing mnemonic or secret URI read from
                standard input (as btcli wallet regen-hotkey does)
  show          print the public key and SS58 address of a wallet hotkey

The wallets directory is --wallet-path (--wallets-dir also works), else $` + walletsDirEnv + `,
else ~/.bittensor/wallets: the same flag as the roles' and ` + "`horde job`" + `'s.
Run ` + "`horde wallet <command> --help`" + ` for a command's flags.
`

func runWallet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, walletHelp)
		return fmt.Errorf("%w: name a wallet command (inspect, new, import, show)", errUsage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, walletHelp)
		return nil
	case "inspect":
		return walletInspect(args[1:], stdout, stderr)
	case "new":
		return walletNew(args[1:], stdout, stderr)
	case "import":
		return walletImport(args[1:], stdout, stderr)
	case "show":
		return walletShow(args[1:], stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown wallet command %q (inspect, new, import, show)", errUsage, args[0])
	}
}

func walletInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("wallet inspect", "wallet inspect URI\n\n"+
		"URI is a Substrate secret URI: //Alice, a mnemonic, \"<mnemonic>//hard/soft\",\n"+
		"\"<mnemonic>///password\" or a 0x-prefixed 32-byte seed. \"-\" reads it from standard input,\n"+
		"which keeps it out of the shell history.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: wallet inspect takes exactly one secret URI (quote a mnemonic), got %d arguments", errUsage, fs.NArg())
	}
	uri := fs.Arg(0)
	if uri == "-" {
		var err error
		if uri, err = readSecretLine(); err != nil {
			return err
		}
	}
	kp, err := keys.FromURI(uri)
	if err != nil {
		return err
	}
	printKey(stdout, kp.Public())
	return nil
}

// hotkeyPath parses args, which must hold walletFlags' flags only, and returns the hotkey
// file they name.
func hotkeyPath(fs *flag.FlagSet, args []string, dir, wallet, hotkey *string) (string, error) {
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if fs.NArg() != 0 {
		return "", fmt.Errorf("%w: %s takes no arguments, got %q", errUsage, fs.Name(), fs.Args())
	}
	return keys.HotkeyPath(*dir, *wallet, *hotkey)
}

// readSecretLine reads one line, a secret URI or mnemonic, from walletStdin.
func readSecretLine() (string, error) {
	line, err := bufio.NewReader(io.LimitReader(walletStdin, 4096)).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("reading the secret URI from standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// walletFlags adds the flags that name a hotkey file. The directory is --wallet-path, as
// the roles and `horde job` name it; --wallets-dir, its first name here, still works.
func walletFlags(fs *flag.FlagSet) (dir, wallet, hotkey *string) {
	def := os.Getenv(walletsDirEnv)
	if def == "" {
		def = keys.DefaultWalletsDir()
	}
	dir = new(string)
	fs.StringVar(dir, "wallet-path", def, "wallets directory (env "+walletsDirEnv+")")
	fs.StringVar(dir, "wallets-dir", def, "the same as --wallet-path")
	wallet = fs.String("wallet", "default", "wallet name")
	hotkey = fs.String("hotkey", "default", "hotkey name")
	return dir, wallet, hotkey
}

func walletNew(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("wallet new", "wallet new [--wallet W] [--hotkey H] [--wallet-path DIR] [--overwrite]\n\n"+
		"Creates <wallet-path>/<wallet>/hotkeys/<hotkey> (mode 0600) from a fresh 12-word mnemonic, and\n"+
		"<hotkey>pub.txt next to it, as bittensor does. It prints the mnemonic once: store it safely.", stderr)
	dir, wallet, hotkey := walletFlags(fs)
	overwrite := fs.Bool("overwrite", false, "replace an existing hotkey file (its key is lost unless you kept its mnemonic)")
	path, err := hotkeyPath(fs, args, dir, wallet, hotkey)
	if err != nil {
		return err
	}
	mnemonic, err := keys.NewMnemonic()
	if err != nil {
		return err
	}
	kp, err := keys.FromURI(mnemonic)
	if err != nil {
		return err
	}
	if err := writeHotkey(stdout, path, kp, mnemonic, *overwrite); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mnemonic: %s\n\n", mnemonic)
	fmt.Fprint(stdout, "WARNING: write the mnemonic down and store it safely offline; it is not shown again.\n"+
		"Anyone who has it controls this hotkey, and it is the only way to restore the key if the file is lost.\n")
	return nil
}

func walletImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("wallet import", "wallet import [--wallet W] [--hotkey H] [--wallet-path DIR] [--overwrite] < MNEMONIC\n\n"+
		"Reads a mnemonic (or any secret URI `horde wallet inspect` takes) from standard input, so that it\n"+
		"stays out of the shell history, and writes <wallet-path>/<wallet>/hotkeys/<hotkey> (mode 0600)\n"+
		"and <hotkey>pub.txt from it, as `btcli wallet regen-hotkey` does. Check the printed address.", stderr)
	dir, wallet, hotkey := walletFlags(fs)
	overwrite := fs.Bool("overwrite", false, "replace an existing hotkey file")
	path, err := hotkeyPath(fs, args, dir, wallet, hotkey)
	if err != nil {
		return err
	}
	uri, err := readSecretLine()
	if err != nil {
		return err
	}
	kp, err := keys.FromURI(uri)
	if err != nil {
		return err
	}
	// A plain mnemonic is kept in the file as bittensor keeps it; a derived key (//hard,
	// ///password) or a raw seed has no phrase that gives it.
	mnemonic := ""
	if !strings.ContainsRune(uri, '/') && !strings.HasPrefix(uri, "0x") {
		mnemonic = uri
	}
	if err := writeHotkey(stdout, path, kp, mnemonic, *overwrite); err != nil {
		return err
	}
	return nil
}

func walletShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("wallet show", "wallet show [--wallet W] [--hotkey H] [--wallet-path DIR]\n\n"+
		"Loads <wallet-path>/<wallet>/hotkeys/<hotkey>, checks it, and prints its public key.", stderr)
	dir, wallet, hotkey := walletFlags(fs)
	path, err := hotkeyPath(fs, args, dir, wallet, hotkey)
	if err != nil {
		return err
	}
	kp, err := keys.LoadHotkeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w (create one with `horde wallet new`, or `horde wallet import` an existing mnemonic, or pick another --wallet-path, --wallet or --hotkey)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hotkey file: %s\n", path)
	printKey(stdout, kp.Public())
	return nil
}

// writeHotkey writes kp's hotkey file at path and prints where and which key.
func writeHotkey(stdout io.Writer, path string, kp *keys.Keypair, mnemonic string, overwrite bool) error {
	if err := keys.WriteHotkeyFile(path, kp, mnemonic, overwrite); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hotkey file: %s\n", path)
	printKey(stdout, kp.Public())
	return nil
}

func printKey(w io.Writer, p keys.PublicKey) {
	fmt.Fprintf(w, "public key: %s\nss58 address: %s\n", p.Hex(), p.SS58())
}
