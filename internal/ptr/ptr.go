// Package ptr reads the optional (pointer) fields of wire messages. Making a pointer needs no
// helper since Go 1.26: new("text") does it.
package ptr

// Deref returns *p, or the zero value when p is nil.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
