package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopbackNamespace makes a network namespace with loopback only, held by a locked thread
// until the test ends, and runs fn inside it (on that thread) whenever the test asks.
func loopbackNamespace(t *testing.T) (path string, in func(func())) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making a network namespace needs root")
	}
	calls := make(chan func())
	ready := make(chan string)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread, and the namespace, end with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- "unshare: " + err.Error()
			return
		}
		ready <- fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		for fn := range calls {
			fn()
		}
	}()
	path = <-ready
	if path[0] != '/' {
		t.Skip(path)
	}
	t.Cleanup(func() { close(calls) })
	in = func(fn func()) {
		done := make(chan struct{})
		calls <- func() { fn(); close(done) }
		<-done
	}
	if out, err := exec.Command("nsenter", "--net="+path, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Skipf("ip link set lo up: %v: %s", err, out)
	}
	return path, in
}

// TestDelayQueue holds a namespace's outgoing packets 200 ms and drops the share asked for,
// as netem would: a TCP round trip on loopback (two packets out) takes at least 400 ms, and
// about half of 400 datagrams get through a 50% loss.
func TestDelayQueue(t *testing.T) {
	path, in := loopbackNamespace(t)
	if _, err := exec.LookPath("iptables-legacy"); err != nil {
		t.Skip("iptables-legacy is not installed")
	}
	rule := []string{"OUTPUT", "-j", "NFQUEUE", "--queue-num", "7", "--queue-bypass"}
	if out, err := exec.Command("nsenter", append([]string{"--net=" + path, "iptables-legacy", "-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Skipf("the kernel has no NFQUEUE: %v: %s", err, out)
	}
	q, err := openDelayQueue(path, 7, 200*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()

	var ln net.Listener
	var c net.Conn
	in(func() {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			c, err = net.Dial("tcp", ln.Addr().String())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer c.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		b := make([]byte, 1)
		for {
			if _, err := s.Read(b); err != nil {
				return
			}
			if _, err := s.Write(b); err != nil {
				return
			}
		}
	}()
	b := make([]byte, 1)
	began := time.Now()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(b); err != nil {
		t.Fatal(err)
	}
	rtt := time.Since(began)
	if rtt < 400*time.Millisecond {
		t.Errorf("round trip %s through a 200 ms delay each way, want at least 400 ms", rtt)
	}
	t.Logf("round trip through the delay queue: %s", rtt)
	if _, passed := q.counts(); passed == 0 {
		t.Error("no packet went through the queue")
	}
	q.close()

	lossy, err := openDelayQueue(path, 7, time.Millisecond, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	defer lossy.close()
	var rx, tx net.PacketConn
	in(func() {
		if rx, err = net.ListenPacket("udp", "127.0.0.1:0"); err == nil {
			tx, err = net.ListenPacket("udp", "127.0.0.1:0")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	defer tx.Close()
	const sent = 400
	for range sent {
		if _, err := tx.WriteTo([]byte("x"), rx.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Every datagram has its verdict within a millisecond or so; whatever has not arrived
	// half a second after the last is lost.
	got := 0
	for {
		_ = rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := rx.ReadFrom(b); err != nil {
			break
		}
		got++
	}
	dropped, passed := lossy.counts()
	t.Logf("%d of %d datagrams through 50%% loss", got, sent)
	if got < sent*3/10 || got > sent*7/10 || dropped+passed != sent || got != passed {
		t.Errorf("%d of %d datagrams arrived through 50%% loss (queue: %d dropped, %d passed)", got, sent, dropped, passed)
	}
}
