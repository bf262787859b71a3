package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Link faults work inside a role's network namespace, entered from the host with nsenter
// (the harness runs as root; containers get no extra capability): iptables rules for a
// partition between two roles, a queueing discipline and random loss for a slow link.

// cut is a partition between two roles: each drops what comes in from the other.
type cut struct {
	a, b       *Role
	pidA, pidB string // the namespaces the rules are in (a restarted container has a new one)
}

// slow is a role's slowed link.
type slow struct {
	pid, dev string
	netem    bool
	queue    *delayQueue // the NFQUEUE way, else nil
}

// Slow-link parameters: netem where the kernel has it; else the same delay and loss through
// an NFQUEUE the harness holds (delayQueue); else a token bucket and iptables' random drop.
const (
	slowDelay = 200 * time.Millisecond
	slowLoss  = 0.05
	slowRate  = "1mbit"
	// slowQueue is the NFQUEUE number in a slowed role's namespace (queues are per
	// namespace).
	slowQueue = 1
)

// slowQueueRule is the iptables-legacy rule that hands a namespace's outgoing packets to the
// queue (iptables-nft would need the kernel's nft queue, which kernels without netem
// tend to lack too); --queue-bypass lets them through while nothing holds the queue.
var slowQueueRule = []string{"OUTPUT", "!", "-o", "lo", "-j", "NFQUEUE", "--queue-num", fmt.Sprint(slowQueue), "--queue-bypass"}

func (h *Harness) pidOf(ctx context.Context, r *Role) (string, error) {
	pid, err := docker(ctx, "inspect", "-f", "{{.State.Pid}}", r.Container)
	if err == nil && (pid == "" || pid == "0") {
		err = fmt.Errorf("%s is not running", r.Name)
	}
	return pid, err
}

// nsenter runs a command in the network namespace of process pid.
func nsenter(ctx context.Context, pid string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", pid, "-n"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nsenter -t %s -n %s: %v: %s", pid, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func nsenterOut(ctx context.Context, pid string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", pid, "-n"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nsenter -t %s -n %s: %v: %s", pid, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// probeLinks finds which link faults this host can inject, from the chain's namespace: a
// harmless rule and queueing discipline added and removed at once.
func (h *Harness) probeLinks(ctx context.Context) {
	chain := h.Role("chain")
	pid, err := h.pidOf(ctx, chain)
	if err != nil {
		h.noCut, h.noSlow = err.Error(), err.Error()
		return
	}
	for _, tool := range []string{"nsenter", "iptables", "tc", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			h.noCut = fmt.Sprintf("%s is not installed on the host", tool)
			h.noSlow = h.noCut
			return
		}
	}
	rule := []string{"INPUT", "-s", "192.0.2.1", "-j", "DROP"}
	if err := nsenter(ctx, pid, append([]string{"iptables", "-w", "-I"}, rule...)...); err != nil {
		h.noCut = err.Error()
		h.noSlow = err.Error()
		return
	}
	_ = nsenter(ctx, pid, append([]string{"iptables", "-w", "-D"}, rule...)...)
	dev, err := h.devOf(ctx, pid, chain)
	if err != nil {
		h.noSlow = err.Error()
		return
	}
	if err := nsenter(ctx, pid, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", slowDelay.String()); err == nil {
		h.netem = true
		_ = nsenter(ctx, pid, "tc", "qdisc", "del", "dev", dev, "root")
	} else {
		h.noNetem = err.Error()
	}
	if !h.netem {
		if err := probeQueue(ctx, pid); err != nil {
			h.noNetem += "; NFQUEUE: " + err.Error()
		} else {
			h.nfqueue = true
			return
		}
		if err := nsenter(ctx, pid, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", slowRate, "burst", "32kbit", "latency", "400ms"); err != nil {
			h.noSlow = "neither netem nor tbf: " + err.Error()
			return
		}
		_ = nsenter(ctx, pid, "tc", "qdisc", "del", "dev", dev, "root")
	}
}

// probeQueue adds the slow link's NFQUEUE rule in namespace pid, holds its queue, and
// removes both.
func probeQueue(ctx context.Context, pid string) error {
	if err := nsenter(ctx, pid, append([]string{"iptables-legacy", "-w", "-I"}, slowQueueRule...)...); err != nil {
		return err
	}
	defer nsenter(ctx, pid, append([]string{"iptables-legacy", "-w", "-D"}, slowQueueRule...)...)
	q, err := openDelayQueue("/proc/"+pid+"/ns/net", slowQueue, slowDelay, slowLoss)
	if err != nil {
		return err
	}
	q.close()
	return nil
}

// devOf is the interface that holds r's address in namespace pid (eth0, or another name
// after the role was disconnected and connected again).
func (h *Harness) devOf(ctx context.Context, pid string, r *Role) (string, error) {
	out, err := nsenterOut(ctx, pid, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && strings.HasPrefix(f[3], r.IP+"/") {
			return strings.TrimSuffix(f[1], ":"), nil
		}
	}
	return "", fmt.Errorf("no interface holds %s's address %s", r.Name, r.IP)
}

// FaultKinds are the fault kinds this host can inject, and why each other one cannot be.
func (h *Harness) FaultKinds() (kinds []string, missing map[string]string) {
	kinds = []string{FaultKill, FaultPartition, FaultChain}
	missing = map[string]string{}
	if h.noCut == "" {
		kinds = append(kinds, FaultCut)
	} else {
		missing[FaultCut] = h.noCut
	}
	if h.noSlow == "" {
		kinds = append(kinds, FaultSlow)
	} else {
		missing[FaultSlow] = h.noSlow
	}
	if h.engineProxy != nil {
		kinds = append(kinds, FaultEngine, FaultEngineErrors)
	}
	switch {
	case h.noNetem != "" && h.noSlow == "" && h.nfqueue:
		missing["netem"] = fmt.Sprintf("%s (a slow link is the same %s delay and %.0f%% loss of outgoing packets through an NFQUEUE the harness holds instead)", h.noNetem, slowDelay, slowLoss*100)
	case h.noNetem != "" && h.noSlow == "":
		missing["netem"] = fmt.Sprintf("%s (a slow link is a %s token bucket and %.0f%% random loss instead, with no added delay)", h.noNetem, slowRate, slowLoss*100)
	}
	return kinds, missing
}

func cutKey(a, b *Role) string {
	n := []string{a.Name, b.Name}
	slices.Sort(n)
	return n[0] + "~" + n[1]
}

// Cut partitions two roles from each other (and nothing else): each one's namespace drops
// what comes in from the other, so both see a silent network, as across a real partition.
func (h *Harness) Cut(ctx context.Context, a, b *Role) error {
	if a == b {
		return errors.New("faults: a role cannot be cut from itself")
	}
	c := &cut{a: a, b: b}
	var err error
	if c.pidA, err = h.pidOf(ctx, a); err != nil {
		return err
	}
	if c.pidB, err = h.pidOf(ctx, b); err != nil {
		return err
	}
	key := cutKey(a, b)
	h.mu.Lock()
	h.cuts[key] = c
	h.mu.Unlock()
	h.markDown(key)
	if err := nsenter(ctx, c.pidA, "iptables", "-w", "-I", "INPUT", "-s", b.IP, "-j", "DROP"); err != nil {
		return err
	}
	return nsenter(ctx, c.pidB, "iptables", "-w", "-I", "INPUT", "-s", a.IP, "-j", "DROP")
}

// Join removes the cut between two roles. A side whose container was restarted since (a new
// namespace) has no rule left.
func (h *Harness) Join(ctx context.Context, a, b *Role) error {
	key := cutKey(a, b)
	h.mu.Lock()
	c := h.cuts[key]
	h.mu.Unlock()
	if c == nil {
		return nil
	}
	var errs []error
	for _, side := range []struct {
		r, peer *Role
		pid     string
	}{{c.a, c.b, c.pidA}, {c.b, c.a, c.pidB}} {
		if now, err := h.pidOf(ctx, side.r); err != nil || now != side.pid {
			continue
		}
		if err := nsenter(ctx, side.pid, "iptables", "-w", "-D", "INPUT", "-s", side.peer.IP, "-j", "DROP"); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.cuts, key)
	h.mu.Unlock()
	h.markUp(key)
	return nil
}

// Slow makes a role's link slow and lossy: netem's 200 ms delay and 5% loss where the
// kernel has netem, else the same delay and loss of what goes out through an NFQUEUE the
// harness holds, else a 1 Mbit/s token bucket and 5% random loss of what comes in.
func (h *Harness) Slow(ctx context.Context, r *Role) error {
	pid, err := h.pidOf(ctx, r)
	if err != nil {
		return err
	}
	dev, err := h.devOf(ctx, pid, r)
	if err != nil {
		return err
	}
	s := &slow{pid: pid, dev: dev, netem: h.netem}
	if !s.netem && h.nfqueue {
		// The queue first, so that no packet meets the rule before something holds it.
		if s.queue, err = openDelayQueue("/proc/"+pid+"/ns/net", slowQueue, slowDelay, slowLoss); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.slowed[r.Name] = s
	h.mu.Unlock()
	if s.netem {
		return nsenter(ctx, pid, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", slowDelay.String(), "loss", fmt.Sprintf("%g%%", slowLoss*100))
	}
	if s.queue != nil {
		return nsenter(ctx, pid, append([]string{"iptables-legacy", "-w", "-I"}, slowQueueRule...)...)
	}
	if err := nsenter(ctx, pid, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", slowRate, "burst", "32kbit", "latency", "400ms"); err != nil {
		return err
	}
	return nsenter(ctx, pid, "iptables", "-w", "-I", "INPUT", "-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(slowLoss), "-j", "DROP")
}

// Unslow gives a slowed role its link back.
func (h *Harness) Unslow(ctx context.Context, r *Role) error {
	h.mu.Lock()
	s := h.slowed[r.Name]
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	if s.queue != nil {
		// The rule goes first (its namespace may be gone with a restarted container); the
		// queue then lets what it holds go.
		if now, err := h.pidOf(ctx, r); err == nil && now == s.pid {
			if err := nsenter(ctx, s.pid, append([]string{"iptables-legacy", "-w", "-D"}, slowQueueRule...)...); err != nil {
				return err
			}
		}
		s.queue.close()
	} else if now, err := h.pidOf(ctx, r); err == nil && now == s.pid {
		if err := nsenter(ctx, s.pid, "tc", "qdisc", "del", "dev", s.dev, "root"); err != nil {
			return err
		}
		if !s.netem {
			if err := nsenter(ctx, s.pid, "iptables", "-w", "-D", "INPUT", "-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(slowLoss), "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	h.mu.Lock()
	delete(h.slowed, r.Name)
	h.mu.Unlock()
	return nil
}
