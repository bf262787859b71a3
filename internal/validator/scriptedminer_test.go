package validator

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/wsconn"
)

// minerScript plays the miner's side of one job after authentication, the manifest and the
// validator's V0InitialJobRequest for job. Whatever the validator sends after the script
// returns is read and recorded until the connection closes.
type minerScript func(p *minerPeer, job string)

// scriptedMiner serves the validator endpoint for one connection and plays a script on it.
type scriptedMiner struct {
	e      *env
	script minerScript
	conns  atomic.Int32
	done   chan struct{} // closed when the connection has been played out
	peer   *minerPeer    // set before done is closed
}

// startMiner serves script on a loopback httptest server and announces it as Bob's axon.
func (e *env) startMiner(script minerScript) *scriptedMiner {
	e.t.Helper()
	m := &scriptedMiner{e: e, script: script, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/v0.1/validator_interface/{hotkey}", m.serve)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(func() {
		srv.Close()
		// Close does not wait for hijacked connections; the handler must end before the test.
		if m.conns.Load() > 0 {
			m.wait()
		}
	})
	e.serveAxon(srv.Listener.Addr().(*net.TCPAddr).Port)
	return m
}

// wait returns the played-out connection once the validator has closed it.
func (m *scriptedMiner) wait() *minerPeer {
	m.e.t.Helper()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.e.t.Fatal("the scripted miner's connection did not end")
	}
	return m.peer
}

func (m *scriptedMiner) serve(w http.ResponseWriter, r *http.Request) {
	t := m.e.t
	if m.conns.Add(1) != 1 {
		t.Errorf("the validator opened a second connection for one job")
		http.Error(w, "one connection per test", http.StatusConflict)
		return
	}
	defer close(m.done)
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		t.Errorf("miner: accept: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// wsconn.New is what wsconn.Accept wraps; the raw websocket is kept for malformed frames.
	p := &minerPeer{t: t, ctx: ctx, ws: ws, conn: wsconn.New(ws), e: m.e}
	defer p.conn.CloseNow()
	m.peer = p
	played := make(chan struct{})
	go func() { // a goroutine of its own, so that a failing script can end with runtime.Goexit
		defer close(played)
		p.authenticate(r.PathValue("hotkey"))
		p.initial = expect[protocol.V0InitialJobRequest](p)
		m.script(p, p.initial.JobUUID)
	}()
	<-played
	for {
		if _, err := p.read(); err != nil {
			return
		}
	}
}

// minerPeer is the miner's end of the connection, as a script drives it.
type minerPeer struct {
	t       *testing.T
	e       *env
	ctx     context.Context
	ws      *websocket.Conn
	conn    *wsconn.Conn
	initial *protocol.V0InitialJobRequest
	got     []protocol.Message // everything the validator sent, in order, but the class values
	// classValues is the V0ClassValuesMessage the validator sent after auth.
	classValues *protocol.V0ClassValuesMessage
}

// fail reports a script failure and ends the script's goroutine.
func (p *minerPeer) fail(format string, args ...any) {
	p.t.Helper()
	p.t.Errorf(format, args...)
	runtime.Goexit()
}

// read returns the validator's next message, or the error that ended the connection.
func (p *minerPeer) read() (protocol.Message, error) {
	frame, err := p.conn.ReadFrame(p.ctx)
	if err != nil {
		return nil, err
	}
	msg, err := protocol.DecodeValidatorToMiner(frame)
	if err != nil {
		p.fail("miner: the validator sent a frame outside its union: %s: %v", frame, err)
	}
	if cv, ok := msg.(*protocol.V0ClassValuesMessage); ok {
		// The class values follow the auth; the scripts play the job exchange.
		p.classValues = cv
		return p.read()
	}
	p.got = append(p.got, msg)
	return msg, nil
}

// expect reads the validator's next message, which must be a *T.
func expect[T any, PT interface {
	*T
	protocol.Message
}](p *minerPeer) PT {
	p.t.Helper()
	msg, err := p.read()
	if err != nil {
		p.fail("miner: read: %v", err)
	}
	m, ok := msg.(PT)
	if !ok {
		p.fail("miner: the validator sent %s, want %s", msg.MessageType(), PT(new(T)).MessageType())
	}
	return m
}

func (p *minerPeer) send(m protocol.Message) {
	p.t.Helper()
	if err := p.conn.Send(p.ctx, m); err != nil {
		p.fail("miner: send %s: %v", m.MessageType(), err)
	}
}

func (p *minerPeer) sendRaw(frame string) {
	p.t.Helper()
	if err := p.ws.Write(p.ctx, websocket.MessageText, []byte(frame)); err != nil {
		p.fail("miner: send raw frame: %v", err)
	}
}

// authenticate checks the validator's auth as an upstream miner does, then announces the
// manifest.
func (p *minerPeer) authenticate(pathHotkey string) {
	p.t.Helper()
	a := expect[protocol.ValidatorAuthForMiner](p)
	var why string
	switch age := p.e.clock.Now().Unix() - a.Timestamp; {
	case pathHotkey != p.e.alice.SS58():
		why = "path hotkey " + pathHotkey + " is not the validator's"
	case a.ValidatorHotkey != pathHotkey:
		why = "wrong validator hotkey"
	case a.MinerHotkey != p.e.bob.SS58():
		why = "wrong miner hotkey"
	case age > 10 || age < -10:
		why = "msg too old (or from the future)"
	case keys.Verify(a.ValidatorHotkey, a.BlobForSigning(), a.Signature) != nil:
		why = "Signature mismatches"
	}
	if why != "" {
		_ = p.conn.Send(p.ctx, &protocol.GenericError{Details: new("Validator not authenticated due to: " + why)})
		p.fail("miner: auth %+v: %s", *a, why)
	}
	p.send(&protocol.V0ExecutorManifestRequest{Manifest: protocol.Manifest{{Class: protocol.ExecutorClassAlwaysOnTest, Count: 1}}})
}

// accept accepts the job and reads the JobAccepted receipt the validator answers with.
func (p *minerPeer) accept(job string) {
	p.t.Helper()
	p.send(&protocol.V0AcceptJobRequest{JobUUID: job})
	expect[protocol.V0JobAcceptedReceiptRequest](p)
}

// ready reports the executor ready and reads the job request.
func (p *minerPeer) ready(job string) {
	p.t.Helper()
	p.send(&protocol.V0ExecutorReadyRequest{JobUUID: job})
	expect[protocol.V0JobRequest](p)
}

// finish reports the remaining stages and the result, with machine specs interleaved as an
// upstream executor sends them.
func (p *minerPeer) finish(job string) {
	p.t.Helper()
	p.send(&protocol.V0VolumesReadyRequest{JobUUID: job})
	p.send(&protocol.V0ExecutionDoneRequest{JobUUID: job})
	p.send(&protocol.V0MachineSpecsRequest{JobUUID: job, Specs: protocol.MachineSpecs{Specs: json.RawMessage(`{"cpu":{"count":1}}`)}})
	p.send(&protocol.V0JobFinishedRequest{JobUUID: job, DockerProcessStdout: "hello horde\n", DockerProcessStderr: "a warning\n"})
}

// expire waits until the validator waits for the deadline d after the time on the clock, which
// stands still until a test moves it, and then moves the clock to that deadline.
func (p *minerPeer) expire(d time.Duration) {
	p.t.Helper()
	if err := p.e.clock.AwaitTimer(p.ctx, p.e.clock.Now().Add(d)); err != nil {
		p.fail("miner: the validator never waited for a deadline %v away: %v", d, err)
	}
	p.e.clock.Advance(d)
}

// happyMiner runs the job to completion.
func happyMiner(p *minerPeer, job string) {
	p.accept(job)
	p.ready(job)
	p.finish(job)
}

// sent returns the messages of type PT the validator sent.
func sent[T any, PT interface {
	*T
	protocol.Message
}](p *minerPeer) []PT {
	var out []PT
	for _, m := range p.got {
		if m, ok := m.(PT); ok {
			out = append(out, m)
		}
	}
	return out
}

// checkFinishedReceipt checks that the validator closed the job with exactly one JobFinished
// receipt, as its last message, signed by Alice, with the given score.
func (p *minerPeer) checkFinishedReceipt(job, score string) {
	t := p.t
	t.Helper()
	recs := sent[protocol.V0JobFinishedReceiptRequest](p)
	if len(recs) != 1 {
		t.Fatalf("the validator sent %d JobFinished receipts, want 1", len(recs))
	}
	r := recs[0]
	if last := p.got[len(p.got)-1]; last != protocol.Message(r) {
		t.Errorf("the JobFinished receipt is not the validator's last message (that is %s)", last.MessageType())
	}
	pl := r.Payload
	if pl.JobUUID != job || pl.MinerHotkey != p.e.bob.SS58() || pl.ValidatorHotkey != p.e.alice.SS58() {
		t.Errorf("JobFinished receipt for job %s miner %s validator %s; want %s %s %s",
			pl.JobUUID, pl.MinerHotkey, pl.ValidatorHotkey, job, p.e.bob.SS58(), p.e.alice.SS58())
	}
	if pl.ScoreStr != score {
		t.Errorf("JobFinished receipt score_str = %q, want %q", pl.ScoreStr, score)
	}
	if len(pl.BlockNumbers) != 0 {
		t.Errorf("JobFinished receipt block_numbers = %v, want []", pl.BlockNumbers)
	}
	if pl.TimeStarted.After(pl.Timestamp.Time) || pl.TimeTookUS < 0 {
		t.Errorf("JobFinished receipt time_started %v, timestamp %v, time_took_us %d", pl.TimeStarted, pl.Timestamp, pl.TimeTookUS)
	}
	if err := keys.Verify(p.e.alice.SS58(), pl.BlobForSigning(), r.Signature); err != nil {
		t.Errorf("JobFinished receipt signature: %v", err)
	}
}
