package enginemsg

import (
	"errors"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	var totals []int64
	err := Read(strings.NewReader(`{"id":"a","status":"Downloading","progressDetail":{"total":5}}
{"stream":"Loaded image"}`), func(m Message) error {
		totals = append(totals, m.ProgressDetail.Total)
		return nil
	})
	if err != nil || len(totals) != 2 || totals[0] != 5 {
		t.Fatalf("Read = %v, totals %v", err, totals)
	}
	for stream, want := range map[string]string{
		`{"status":"x"}{"errorDetail":{"message":"manifest unknown"},"error":"old"}`: "manifest unknown",
		`{"error":"denied"}`: "denied",
		`{"status":`:         "read engine response",
	} {
		if err := Read(strings.NewReader(stream), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Read(%s) = %v, want %q", stream, err, want)
		}
	}
	stop := errors.New("stop")
	if err := Read(strings.NewReader(`{}{}`), func(Message) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("each's error: %v", err)
	}
}
