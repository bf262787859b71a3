package devnet

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
)

// portsFile keeps, in a kept data dir, the port each role listened on, so that a restart
// serves the same URLs (the facilitator's API and the admin panels a user bookmarked, the
// HORDE_FACILITATOR_URL exported in a shell) whenever those ports are still free.
const portsFile = "ports.json"

// listen listens on a loopback port for the role named name: the one it had in the last run
// on the same data dir when that is free, else any free one.
func (d *Devnet) listen(name string) (net.Listener, error) {
	if d.tempDir == "" {
		if d.ports == nil {
			d.ports = map[string]uint16{}
			if b, err := os.ReadFile(filepath.Join(d.cfg.DataDir, portsFile)); err == nil {
				_ = json.Unmarshal(b, &d.ports) // unreadable: new ports, written again below
			}
		}
		if p := d.ports[name]; p != 0 {
			if lis, err := net.Listen("tcp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), p).String()); err == nil {
				return lis, nil
			}
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("devnet: listen for the %s: %w", name, err)
	}
	if d.ports != nil {
		_, port, _ := net.SplitHostPort(lis.Addr().String())
		p, _ := strconv.ParseUint(port, 10, 16)
		d.ports[name] = uint16(p)
	}
	return lis, nil
}

// savePorts writes the ports of this run into a kept data dir.
func (d *Devnet) savePorts() error {
	if d.ports == nil {
		return nil
	}
	b, err := json.MarshalIndent(d.ports, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(d.cfg.DataDir, portsFile), append(b, '\n'), 0o600)
	}
	if err != nil {
		return fmt.Errorf("devnet: keep the ports: %w", err)
	}
	return nil
}
