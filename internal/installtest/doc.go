// Package installtest tests scripts/install_miner.sh and scripts/install_validator.sh for
// real: the scripts install a miner and a validator over SSH on two Debian servers (containers
// of a Debian root file system built with debootstrap, booted with systemd as PID 1, with
// sshd) on a private Docker network, and the two then run a job together through a
// `horde chain sim` on the network's gateway. The package holds tests only; see
// install_test.go.
package installtest
