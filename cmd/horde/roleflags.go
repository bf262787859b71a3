package main

import (
	"flag"
	"os"
)

// roleFlags are the flags every role's `run` shares: the configuration file, the wallet as
// btcli names it, and verbosity.
type roleFlags struct {
	config, wallet, hotkey, walletPath *string
	verbose                            *bool
	envPrefix                          string
}

// addRoleFlags registers them on fs; role names the role in the help texts.
func addRoleFlags(fs *flag.FlagSet, role, envPrefix string) *roleFlags {
	return &roleFlags{
		config:     fs.String("config", "", "the "+role+"'s configuration file (examples/"+role+".toml documents every key; each is also $"+envPrefix+"_<TABLE>_<KEY>)"),
		wallet:     fs.String("wallet", "", "wallet name, as btcli's --wallet.name (overrides [wallet] name)"),
		hotkey:     fs.String("hotkey", "", "hotkey name, as btcli's --wallet.hotkey (overrides [wallet] hotkey)"),
		walletPath: fs.String("wallet-path", "", "wallets directory (overrides [wallet] path; default ~/.bittensor/wallets)"),
		verbose:    fs.Bool("v", false, "log every event (default: info)"),
		envPrefix:  envPrefix,
	}
}

// getenv is the environment with the wallet flags given on the command line winning over it
// (and so over the file).
func (f *roleFlags) getenv() func(string) string {
	overrides := map[string]string{}
	for v, key := range map[*string]string{f.wallet: "_WALLET_NAME", f.hotkey: "_WALLET_HOTKEY", f.walletPath: "_WALLET_PATH"} {
		if *v != "" {
			overrides[f.envPrefix+key] = *v
		}
	}
	return func(k string) string {
		if v, ok := overrides[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
}
