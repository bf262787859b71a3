package execmgr

import (
	"github.com/computehorde/horde/internal/miner"
	"github.com/computehorde/horde/internal/protocol"
)

// Reserve takes an executor of class for job as Start does, every host counting as up, and
// returns the command line and labels its container would get, without creating it.
func (d *Docker) Reserve(job string, class protocol.ExecutorClass) (cmd []string, labels map[string]string, err error) {
	d.mu.Lock()
	for _, h := range d.hosts {
		h.answering, h.imageReady = true, true
	}
	d.mu.Unlock()
	e, _, err := d.reserve(miner.ExecutorRequest{JobUUID: job, ExecutorClass: class, Token: "token"})
	if err != nil {
		return nil, nil, err
	}
	d.starts.Done()
	d.mu.Lock()
	e.starting = false
	d.mu.Unlock()
	cfg, _ := d.containerConfig(e, "token")
	return cfg.Cmd, cfg.Labels, nil
}

// Unreserve frees what Reserve took for job.
func (d *Docker) Unreserve(job string) {
	d.mu.Lock()
	e := d.byJob[job]
	d.mu.Unlock()
	if e != nil {
		d.release(e)
	}
}
