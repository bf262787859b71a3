//go:build !linux

package docker

// initKiller is Linux only; elsewhere the engine kills.
type initKiller struct{}

func openInitKiller(int, string) *initKiller { return nil }
func (k *initKiller) kill() bool             { return false }
func (k *initKiller) close()                 {}
