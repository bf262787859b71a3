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
