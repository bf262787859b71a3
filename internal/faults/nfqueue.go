package faults

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// delayQueue holds a network namespace's outgoing packets for a fixed delay and drops a
// share of them: netem's "delay 200ms loss 5%" for kernels without netem (or fq, whose
// departure times would do the same). An iptables NFQUEUE rule in the namespace hands each
// packet's metadata to this process over nfnetlink_queue; the verdict, given after the delay,
// lets the packet go. The rule's --queue-bypass and the queue's fail-open flag let packets
// through unharmed when the handler is gone or the queue is full.
type delayQueue struct {
	fd    int
	num   uint16
	delay time.Duration
	loss  float64

	mu      sync.Mutex
	pending []pendingVerdict // in arrival order; the delay is fixed, so also in due order
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	closed  bool
	dropped int // packets given NF_DROP
	passed  int // packets let go after the delay
}

type pendingVerdict struct {
	id  uint32
	due time.Time
}

// nfnetlink_queue's constants (linux/netfilter/nfnetlink_queue.h, nfnetlink.h).
const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	nfqnlCfgCmdBind    = 1
	nfqnlCopyMeta      = 1
	nfqaCfgFFailOpen   = 1
	nfDrop             = 0
	nfAccept           = 1
	nlaTypeMask        = 0x3fff
)

// openDelayQueue binds queue num in the network namespace at nsPath (/proc/PID/ns/net) and
// starts giving verdicts. The socket is made inside the namespace and stays bound to it.
func openDelayQueue(nsPath string, num uint16, delay time.Duration, loss float64) (*delayQueue, error) {
	fd, err := socketIn(nsPath)
	if err != nil {
		return nil, err
	}
	q := &delayQueue{fd: fd, num: num, delay: delay, loss: loss, wake: make(chan struct{}, 1), done: make(chan struct{})}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	// Reads wake up now and then to see whether the queue is closing: a netlink socket
	// cannot be shut down under a blocked read.
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue: receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue: bind: %w", err)
	}
	params := make([]byte, 5) // copy_range (be32) and copy_mode: metadata only, no payload
	params[4] = nfqnlCopyMeta
	flags := binary.BigEndian.AppendUint32(nil, nfqaCfgFFailOpen)
	for _, msg := range [][]byte{
		q.message(nfqnlMsgConfig, unix.NLM_F_ACK, attr(nfqaCfgCmd, []byte{nfqnlCfgCmdBind, 0, 0, 0})),
		q.message(nfqnlMsgConfig, unix.NLM_F_ACK, attr(nfqaCfgParams, params),
			attr(nfqaCfgQueueMaxlen, binary.BigEndian.AppendUint32(nil, 4096))),
		q.message(nfqnlMsgConfig, unix.NLM_F_ACK, attr(nfqaCfgFlags, flags), attr(nfqaCfgMask, flags)),
	} {
		if err := q.request(msg); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("nfqueue: configuring queue %d: %w", num, err)
		}
	}
	q.wg.Go(q.read)
	q.wg.Go(q.release)
	return q, nil
}

// socketIn makes a netfilter netlink socket inside the network namespace at nsPath, from a
// thread that enters it and comes back (or, if it cannot come back, dies with its goroutine).
func socketIn(nsPath string) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{-1, err}
			return
		}
		defer own.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			ch <- result{-1, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, fmt.Errorf("nfqueue: entering %s: %w", nsPath, err)}
			return
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			err = fmt.Errorf("nfqueue: netlink socket: %w", err)
		}
		ch <- result{fd, err}
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and is thrown away when this goroutine ends
	}()
	r := <-ch
	return r.fd, r.err
}

// message is one nfnetlink_queue message for the queue.
func (q *delayQueue) message(typ uint16, flags uint16, attrs ...[]byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, 64)
	b = append(b, unix.AF_UNSPEC, 0) // nfgenmsg: family, version
	b = binary.BigEndian.AppendUint16(b, q.num)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|flags)
	return b
}

// attr is a netlink attribute, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// request sends a config message and reads its acknowledgement (before read runs).
func (q *delayQueue) request(msg []byte) error {
	if err := unix.Sendto(q.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(q.fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return unix.Errno(-errno)
			}
		}
	}
	return nil
}

// read takes queued packets' ids and schedules their verdicts until the socket closes.
func (q *delayQueue) read() {
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-q.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
			continue // the timeout, or packets the socket could not hold (they pass: fail-open)
		}
		if err != nil || n == 0 {
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		for _, m := range msgs {
			if m.Header.Type != nfnlSubsysQueue<<8|nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			id, ok := packetID(m.Data[4:])
			if !ok {
				continue
			}
			if rand.Float64() < q.loss {
				q.verdict(id, nfDrop)
				continue
			}
			q.mu.Lock()
			q.pending = append(q.pending, pendingVerdict{id: id, due: now.Add(q.delay)})
			q.mu.Unlock()
			select {
			case q.wake <- struct{}{}:
			default:
			}
		}
	}
}

// packetID finds NFQA_PACKET_HDR's packet id among a packet message's attributes.
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:]) & nlaTypeMask
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:]), true
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return 0, false
}

// release lets each packet go once its delay has passed.
func (q *delayQueue) release() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		var next time.Time
		var due []uint32
		now := time.Now()
		for len(q.pending) > 0 && !q.pending[0].due.After(now) {
			due = append(due, q.pending[0].id)
			q.pending = q.pending[1:]
		}
		if len(q.pending) > 0 {
			next = q.pending[0].due
		}
		q.mu.Unlock()
		for _, id := range due {
			q.verdict(id, nfAccept)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-q.done:
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

func (q *delayQueue) verdict(id uint32, v uint32) {
	hdr := binary.BigEndian.AppendUint32(nil, v)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	// A verdict that cannot be sent leaves the packet to the kernel, which drops it when the
	// socket closes: a lost packet, as on a lossy link.
	_ = unix.Sendto(q.fd, q.message(nfqnlMsgVerdict, 0, attr(nfqaVerdictHdr, hdr)), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	q.mu.Lock()
	if v == nfDrop {
		q.dropped++
	} else {
		q.passed++
	}
	q.mu.Unlock()
}

// close stops taking packets, lets every held one go at once and unbinds the queue (closing
// the socket).
func (q *delayQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.done)
	q.wg.Wait()
	q.mu.Lock()
	held := q.pending
	q.pending = nil
	q.mu.Unlock()
	for _, p := range held {
		q.verdict(p.id, nfAccept)
	}
	unix.Close(q.fd)
}

// counts says how many packets were dropped and let go after the delay.
func (q *delayQueue) counts() (dropped, passed int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped, q.passed
}
