package store

import (
	"errors"
	"strings"
	"testing"
)

func TestState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := testContext(t)
		type book struct {
			Factors map[string]float64 `json:"factors"`
		}
		var got book
		if err := db.GetState(ctx, "validator.efficiency", &got); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetState of nothing: %v", err)
		}
		for _, want := range []book{{Factors: map[string]float64{"a": 1.5}}, {Factors: map[string]float64{"a": 0.5, "b": 2}}} {
			if err := db.PutState(ctx, "validator.efficiency", want); err != nil {
				t.Fatal(err)
			}
			got = book{}
			if err := db.GetState(ctx, "validator.efficiency", &got); err != nil || len(got.Factors) != len(want.Factors) || got.Factors["a"] != want.Factors["a"] {
				t.Errorf("GetState = %+v, %v; want %+v", got, err, want)
			}
		}
		if err := db.PutState(ctx, "", 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("a state without a name: %v", err)
		}
		if err := db.PutState(ctx, "huge", strings.Repeat("x", maxStateBytes)); !errors.Is(err, ErrInvalid) {
			t.Errorf("an oversized state: %v", err)
		}
		var n int
		if err := db.GetState(ctx, "validator.efficiency", &n); err == nil || !strings.Contains(err.Error(), "decode state") {
			t.Errorf("decoding into the wrong type: %v", err)
		}
	})
}
