package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"

	"github.com/computehorde/horde/internal/config"
	"github.com/computehorde/horde/internal/doctor"
	"github.com/computehorde/horde/internal/facilitatord"
	"github.com/computehorde/horde/internal/hwclass"
	"github.com/computehorde/horde/internal/minerd"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/validatord"
)

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", "doctor --role miner|validator|facilitator [--config FILE] [--wallet NAME --hotkey NAME --wallet-path DIR] [-v]\n\n"+
		"Checks this machine for the role: its configuration, the Docker engine, GPUs and the NVIDIA\n"+
		"Container Toolkit, the listen port, the hotkey, the chain and the registration on it, the axon,\n"+
		"and the database; prints one line per check with the fix for each problem. Exits 1 when a\n"+
		"check failed.", stderr)
	role := fs.String("role", "", "the role to check the machine for: miner, validator or facilitator")
	// The role is known only after parsing; the help text names the pattern.
	rf := addRoleFlags(fs, "role", "HORDE_<ROLE>")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	var t doctor.Target
	switch doctor.Role(*role) {
	case doctor.Miner:
		rf.envPrefix = minerd.EnvPrefix
		t = minerTarget(*rf.config, rf.getenv())
	case doctor.Validator:
		rf.envPrefix = validatord.EnvPrefix
		t = validatorTarget(*rf.config, rf.getenv())
	case doctor.Facilitator:
		rf.envPrefix = facilitatord.EnvPrefix
		t = facilitatorTarget(*rf.config, rf.getenv())
	default:
		return fmt.Errorf("%w: --role %q: name the role to check, miner, validator or facilitator", errUsage, *role)
	}
	log := slog.New(slog.DiscardHandler)
	if *rf.verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfgName := *rf.config
	if cfgName == "" {
		cfgName = "defaults"
	}
	fmt.Fprintf(stdout, "horde doctor: this machine as a %s (config %s)\n\n", t.Role, cfgName)
	results := doctor.Run(ctx, t, doctor.Options{Logger: log})
	if err := doctor.Write(stdout, results); err != nil {
		return err
	}
	if doctor.Failed(results) {
		return exitCode(1)
	}
	return nil
}

// loadConfig reads path over defaults as the role's Load does, keeping apart a file that does
// not read (parsed false) from keys that do not validate, so that the doctor checks what it can
// of a configuration with a bad key.
func loadConfig(t *doctor.Target, path, prefix string, cfg any, getenv func(string) string, validate func() error) {
	t.ConfigFile, t.EnvPrefix = path, prefix
	if err := config.Load(path, cfg, prefix, getenv); err != nil {
		t.ConfigErr = err
		return
	}
	t.Parsed = true
	t.ConfigErr = validate()
}

func minerTarget(path string, getenv func(string) string) doctor.Target {
	c := minerd.Defaults()
	t := doctor.Target{Role: doctor.Miner, NeedDocker: true, NeedRegistration: true}
	loadConfig(&t, path, minerd.EnvPrefix, &c, getenv, c.Validate)
	t.ListenKey, t.Listen, t.StatusSocket = "listen", c.Listen, minerd.StatusSocket(c.DataDir)
	t.WalletPath, t.WalletName, t.HotkeyName = c.Wallet.Path, c.Wallet.Name, c.Wallet.Hotkey
	t.Chain, t.ExternalAddress, t.DSN = c.Chain, c.ExternalAddress, c.DSN()
	for _, h := range c.Executors.Hosts {
		t.DockerHosts = append(t.DockerHosts, doctor.DockerHost{Name: h.Name, Endpoint: h.Endpoint, TLSCA: h.TLSCA, TLSCert: h.TLSCert, TLSKey: h.TLSKey})
	}
	// Only the process manager runs executors on this machine; the docker manager's hosts
	// have their own GPUs.
	if c.Executors.Manager == "process" {
		classes := hwclass.Default()
		for _, name := range slices.Sorted(maps.Keys(c.Executors.Classes)) {
			if cl, err := classes.Lookup(protocol.ExecutorClass(name)); err == nil && cl.HasGPU && c.Executors.Classes[name] > 0 {
				t.GPUClasses = append(t.GPUClasses, name)
			}
		}
	}
	return t
}

func validatorTarget(path string, getenv func(string) string) doctor.Target {
	c := validatord.Defaults()
	t := doctor.Target{Role: doctor.Validator, NeedRegistration: true}
	loadConfig(&t, path, validatord.EnvPrefix, &c, getenv, c.Validate)
	t.ListenKey, t.Listen, t.StatusSocket = "api_listen", c.APIListen, validatord.StatusSocket(c.DataDir)
	t.WalletPath, t.WalletName, t.HotkeyName = c.Wallet.Path, c.Wallet.Name, c.Wallet.Hotkey
	t.Chain, t.DSN = c.Chain, c.DSN()
	return t
}

func facilitatorTarget(path string, getenv func(string) string) doctor.Target {
	c := facilitatord.Defaults()
	t := doctor.Target{Role: doctor.Facilitator, ChainOptional: true}
	loadConfig(&t, path, facilitatord.EnvPrefix, &c, getenv, c.Validate)
	t.ListenKey, t.Listen = "listen", c.Listen
	t.WalletPath, t.WalletName, t.HotkeyName = c.Wallet.Path, c.Wallet.Name, c.Wallet.Hotkey
	t.Chain, t.DSN = c.Chain, c.DSN()
	return t
}
