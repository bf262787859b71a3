// Package wsconn wraps a websocket connection for the JSON-per-text-frame channels of the
// ComputeHorde protocol: concurrent-safe sends, size-limited reads, and bounded close.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/computehorde/horde/internal/protocol"
)

// WriteTimeout bounds one frame write, so a stalled peer cannot block a sender forever. It serves
// every link (validator↔miner, miner↔executor) because the largest frames (job requests with
// inline volumes, results with artifacts, up to protocol.MaxFrameSize) cross each in turn; it
// lets a 50 MiB frame through at 42 Mbit/s.
const WriteTimeout = 10 * time.Second

// ErrBinaryFrame is ReadFrame's error for a binary frame: a protocol violation the peer can be
// told about; the connection stays usable.
var ErrBinaryFrame = errors.New("wsconn: binary frame received; the protocol uses JSON text frames")

// Conn is one websocket connection carrying protocol messages. Send is safe for concurrent
// use; Read must be called from one goroutine at a time.
type Conn struct {
	ws     *websocket.Conn
	sendMu sync.Mutex
}

// New wraps ws, limiting incoming frames to protocol.MaxFrameSize.
func New(ws *websocket.Conn) *Conn {
	ws.SetReadLimit(protocol.MaxFrameSize)
	return &Conn{ws: ws}
}

// Dial opens a websocket to url.
func Dial(ctx context.Context, url string) (*Conn, error) {
	ws, resp, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: HTTP %s: %w", url, resp.Status, err)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return New(ws), nil
}

// Accept upgrades an HTTP request to a websocket.
func Accept(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	return AcceptWith(w, r, AcceptOptions{})
}

// AcceptOptions tunes [AcceptWith].
type AcceptOptions struct {
	// ReadLimit is the largest frame the connection accepts until [Conn.SetReadLimit] changes
	// it; zero means protocol.MaxFrameSize. A bigger frame fails the read and closes the
	// connection with status 1009 (message too big) as soon as the limit is passed: the
	// frame is never buffered whole, whatever length its header claims.
	ReadLimit int64
	// OnPing, if set, is called for each ping frame the peer sends, from the goroutine that
	// reads the connection (pings are only seen while a read is in progress). It must not
	// block.
	OnPing func()
}

// AcceptWith upgrades an HTTP request to a websocket, as Accept does, with opts.
func AcceptWith(w http.ResponseWriter, r *http.Request, opts AcceptOptions) (*Conn, error) {
	var wo websocket.AcceptOptions
	if onPing := opts.OnPing; onPing != nil {
		wo.OnPingReceived = func(context.Context, []byte) bool {
			onPing()
			return true // answer with a pong, as without the callback
		}
	}
	ws, err := websocket.Accept(w, r, &wo)
	if err != nil {
		return nil, err
	}
	c := New(ws)
	if opts.ReadLimit > 0 {
		c.SetReadLimit(opts.ReadLimit)
	}
	return c, nil
}

// SetReadLimit sets the largest frame the next reads accept; a read already under way keeps
// the limit it started with. See [AcceptOptions.ReadLimit] for what a bigger frame does.
func (c *Conn) SetReadLimit(n int64) { c.ws.SetReadLimit(n) }

// Send encodes m and writes it as one text frame.
func (c *Conn) Send(ctx context.Context, m protocol.Message) error {
	data, err := protocol.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.MessageType(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, WriteTimeout)
	defer cancel()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("send %s: %w", m.MessageType(), err)
	}
	return nil
}

// ReadFrame returns the next text frame. A binary frame is read and refused with ErrBinaryFrame.
func (c *Conn) ReadFrame(ctx context.Context) ([]byte, error) {
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, ErrBinaryFrame
	}
	return data, nil
}

// Close closes the connection with a normal status and a reason the peer can log.
func (c *Conn) Close(reason string) error {
	if len(reason) > 120 { // close reasons must fit in a control frame
		reason = reason[:120]
	}
	return c.ws.Close(websocket.StatusNormalClosure, reason)
}

// Ping sends a websocket ping and waits for the pong; a reader must be running (ReadFrame)
// for the pong to arrive. Peers count pings as activity.
func (c *Conn) Ping(ctx context.Context) error { return c.ws.Ping(ctx) }

// CloseNow drops the connection without the closing handshake.
func (c *Conn) CloseNow() error { return c.ws.CloseNow() }

// IsClosed reports whether err means the peer closed the connection or it dropped.
func IsClosed(err error) bool {
	return websocket.CloseStatus(err) != -1 || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded)
}
