package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/coder/websocket"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/computehorde/horde/internal/ptr"
	"github.com/computehorde/horde/internal/wsconn"
)

// errMinerGone is returned while waiting for a message when the miner closed the connection.
var errMinerGone = errors.New("executor: miner closed the connection")

// minerConn is the executor's side of the miner↔executor channel. One goroutine reads and
// enforces the channel rules (duplicate or out-of-order requests get a GenericError, as
// upstream's MinerClient does); the driver awaits the two requests on buffered channels.
type minerConn struct {
	conn *wsconn.Conn
	log  *slog.Logger

	initial chan *protocol.V0InitialJobRequest // buffered 1
	job     chan *protocol.V0JobRequest        // buffered 1
	// malformed receives the decode error of a job request that cannot be read: it can never
	// become valid, so waiting for the stage deadline would only blame the job for it.
	malformed chan error // buffered 1

	done    chan struct{} // closed when the reader stops
	readErr error         // why it stopped; read after done

	cancelRead context.CancelFunc
}

// dialMiner connects to the miner with retries (over cfg.HTTPClient, naming the miner without
// the token's secret part) and starts the reader.
func dialMiner(ctx context.Context, cfg Config, log *slog.Logger) (*minerConn, error) {
	url := ExecutorURL(cfg.MinerURL, cfg.Token)
	safeURL := ExecutorURL(cfg.MinerURL, tokenPrefix(cfg.Token)+"…")
	var ws *websocket.Conn
	var lastErr error
	for attempt := range cfg.DialAttempts {
		if attempt > 0 {
			backoff := time.Duration(1<<(attempt-1))*time.Second + time.Duration(rand.Int64N(int64(time.Second)))
			log.Warn("miner connection failed; retrying", "attempt", attempt, "backoff", backoff, "err", lastErr)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-cfg.Clock.After(backoff):
			}
		}
		opts := &websocket.DialOptions{HTTPClient: cfg.HTTPClient}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		c, resp, err := websocket.Dial(dctx, url, opts)
		cancel()
		if err == nil {
			ws = c
			break
		}
		if resp != nil {
			err = fmt.Errorf("HTTP %s: %w", resp.Status, err)
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if ws == nil {
		return nil, fmt.Errorf("executor: connect to miner at %s failed after %d attempts (check MINER_ADDRESS and that the miner is up): %w", safeURL, cfg.DialAttempts, lastErr)
	}
	log.Info("connected to miner", "url", safeURL)

	rctx, cancel := context.WithCancel(context.Background())
	c := &minerConn{
		conn:       wsconn.New(ws),
		log:        log,
		initial:    make(chan *protocol.V0InitialJobRequest, 1),
		job:        make(chan *protocol.V0JobRequest, 1),
		malformed:  make(chan error, 1),
		done:       make(chan struct{}),
		cancelRead: cancel,
	}
	go c.readLoop(rctx)
	return c, nil
}

func (c *minerConn) readLoop(ctx context.Context) {
	defer close(c.done)
	var gotInitial, gotJob bool
	var jobUUID string
	for {
		data, err := c.conn.ReadFrame(ctx)
		if errors.Is(err, wsconn.ErrBinaryFrame) {
			c.genericError(ctx, "Unsupported message: binary frame")
			continue
		}
		if err != nil {
			c.readErr = err
			return
		}
		if string(data) == "PING" {
			continue
		}
		msg, err := protocol.DecodeMinerToExecutor(data)
		if err != nil {
			c.log.Warn("malformed message from miner", "err", err)
			c.genericError(ctx, "Malformed message: "+err.Error())
			if t := messageType(data); t == "V0InitialJobRequest" || t == "V0JobRequest" {
				select {
				case c.malformed <- fmt.Errorf("malformed %s: %w", t, err):
				default:
				}
			}
			continue
		}
		switch m := msg.(type) {
		case *protocol.V0InitialJobRequest:
			if gotInitial {
				c.genericError(ctx, fmt.Sprintf("Received duplicate initial job request: first job_uuid=%q and then job_uuid=%q", jobUUID, m.JobUUID))
				continue
			}
			gotInitial, jobUUID = true, m.JobUUID
			c.initial <- m
		case *protocol.V0JobRequest:
			if !gotInitial {
				c.genericError(ctx, fmt.Sprintf("Received job request before an initial job request job_uuid=%q", m.JobUUID))
				continue
			}
			if gotJob {
				c.genericError(ctx, fmt.Sprintf("Received duplicate full job payload request: first job_uuid=%q and then job_uuid=%q", jobUUID, m.JobUUID))
				continue
			}
			gotJob = true
			c.job <- m
		case *protocol.GenericError:
			c.log.Warn("miner sent an error", "details", ptr.Deref(m.Details))
		default:
			c.genericError(ctx, "Unsupported message: "+msg.MessageType())
		}
	}
}

func (c *minerConn) genericError(ctx context.Context, details string) {
	if err := c.send(ctx, &protocol.GenericError{Details: &details}); err != nil {
		c.log.Warn("could not answer the miner", "err", err)
	}
}

// send writes one message to the miner.
func (c *minerConn) send(ctx context.Context, m protocol.Message) error {
	if err := c.conn.Send(ctx, m); err != nil {
		return fmt.Errorf("executor: miner connection: %w", err)
	}
	return nil
}

// messageType reads the message_type of a frame that did not decode, "" if there is none.
func messageType(data []byte) string {
	var m struct {
		MessageType string `json:"message_type"`
	}
	_ = json.Unmarshal(data, &m)
	return m.MessageType
}

// gone reports why the connection stopped, for a wait that saw done closed.
func (c *minerConn) gone() error {
	if c.readErr != nil {
		return fmt.Errorf("%w: %w", errMinerGone, c.readErr)
	}
	return errMinerGone
}

// watch returns a context that ends with ctx or when the miner connection drops.
func (c *minerConn) watch(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-wctx.Done():
		}
	}()
	return wctx, cancel
}

// goneIfDone returns the connection's end as an error if the miner has gone, else nil.
func (c *minerConn) goneIfDone() error {
	select {
	case <-c.done:
		return c.gone()
	default:
		return nil
	}
}

// close closes the websocket with a normal closure, which the websocket library bounds (5 s to
// write the close frame, 5 s for the miner's answer), and waits for the reader to stop.
func (c *minerConn) close() {
	_ = c.conn.Close("job done") // the job has been reported or cannot be; nothing to add
	c.cancelRead()
	<-c.done
}
