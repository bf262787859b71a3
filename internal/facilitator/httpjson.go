package facilitator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// apiError is every error's body: a stable code, a sentence for people, and the fields at
// fault for a refused job spec.
type apiError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Fields  []fieldError `json:"fields,omitempty"`
}

type fieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if rw, ok := w.(*refusalWriter); ok {
		if e, ok := v.(map[string]apiError); ok {
			rw.code, rw.msg = e["error"].Code, e["error"].Message
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg}})
}

// refusalWriter notes the error an API handler answered with, so that every refusal is
// logged once with its reason (an operator answering "why was my job refused?" needs it).
type refusalWriter struct {
	http.ResponseWriter
	status    int
	code, msg string
	user      string // set by authed
}

func (w *refusalWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// Flush keeps the job events stream (server-sent events) working through the wrapper.
func (w *refusalWriter) Flush() {
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (w *refusalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRefusals logs each API request answered with a 4xx status: who, what, and why. Server
// errors are logged where they happen (internal).
func (f *Facilitator) logRefusals(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rw := &refusalWriter{ResponseWriter: w}
		h(rw, r)
		if rw.status < 400 || rw.status >= 500 {
			return
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rw.status, "code", rw.code, "why", rw.msg}
		if rw.user != "" {
			attrs = append(attrs, "user", rw.user)
		}
		f.log.Info("request refused", attrs...)
	}
}

func writeFieldErrors(w http.ResponseWriter, fields []fieldError) {
	parts := make([]string, len(fields))
	for i, fe := range fields {
		parts[i] = fe.Field + ": " + fe.Problem
	}
	writeJSON(w, http.StatusBadRequest, map[string]apiError{"error": {Code: "invalid_job", Message: strings.Join(parts, "; "), Fields: fields}})
}

func (f *Facilitator) internal(w http.ResponseWriter, what string, err error) {
	f.log.Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", what+" failed; try again")
}

// decodeBody reads a JSON body of at most limit bytes into v, refusing unknown fields and
// trailing data; on failure it has answered the request.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "send application/json, not "+ct)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is over %d bytes", limit))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "invalid_request", "the body is empty; send a JSON object")
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed JSON: "+err.Error())
	}
	return false
}
