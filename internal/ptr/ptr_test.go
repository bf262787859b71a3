package ptr

import "testing"

func TestDeref(t *testing.T) {
	if got := Deref[string](nil); got != "" {
		t.Errorf("Deref(nil) = %q, want \"\"", got)
	}
	if got := Deref(new("set")); got != "set" {
		t.Errorf("Deref(new(\"set\")) = %q, want \"set\"", got)
	}
}
