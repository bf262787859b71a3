package wsconn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/computehorde/horde/internal/wsconn"
)

// TestBinaryFrame: a binary frame is refused with ErrBinaryFrame and the connection stays
// usable for the text frame after it.
func TestBinaryFrame(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		if err := ws.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Errorf("write binary: %v", err)
			return
		}
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"message_type":"GenericError"}`)); err != nil {
			t.Errorf("write text: %v", err)
			return
		}
		_, _, _ = ws.Read(ctx) // until the client closes
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := wsconn.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, err := c.ReadFrame(ctx); !errors.Is(err, wsconn.ErrBinaryFrame) {
		t.Fatalf("ReadFrame of a binary frame = %v, want ErrBinaryFrame", err)
	}
	data, err := c.ReadFrame(ctx)
	if err != nil || string(data) != `{"message_type":"GenericError"}` {
		t.Fatalf("ReadFrame after the binary frame = %q, %v", data, err)
	}
	if err := c.Close("done"); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestAcceptWith: the accept-time read limit holds until SetReadLimit raises it, a frame over
// it ends the connection with status 1009, and pings reach OnPing.
func TestAcceptWith(t *testing.T) {
	pings := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := wsconn.AcceptWith(w, r, wsconn.AcceptOptions{ReadLimit: 8, OnPing: func() {
			select {
			case pings <- struct{}{}:
			default:
			}
		}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		if data, err := c.ReadFrame(ctx); err != nil || string(data) != "12345678" {
			t.Errorf("frame at the limit: %q, %v", data, err)
			return
		}
		c.SetReadLimit(16)
		if data, err := c.ReadFrame(ctx); err != nil || string(data) != "0123456789abcdef" {
			t.Errorf("frame at the raised limit: %q, %v", data, err)
			return
		}
		if _, err := c.ReadFrame(ctx); !errors.Is(err, websocket.ErrMessageTooBig) {
			t.Errorf("frame over the limit: %v, want ErrMessageTooBig", err)
		}
	}))
	defer srv.Close()

	ctx := t.Context()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	readErr := make(chan error, 1)
	go func() {
		_, _, err := ws.Read(ctx)
		readErr <- err
	}()
	if err := ws.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	<-pings
	for _, frame := range []string{"12345678", "0123456789abcdef", "0123456789abcdefX"} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatalf("write %q: %v", frame, err)
		}
	}
	if got := websocket.CloseStatus(<-readErr); got != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want %d (message too big)", got, websocket.StatusMessageTooBig)
	}
}
