// Package enginemsg reads the JSON message streams the Docker engine answers image pulls and
// image loads with: progress lines, and errors reported in-band after a 200 OK.
package enginemsg

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Message is one line of the stream, with the fields horde reads.
type Message struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Stream         string `json:"stream"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// Read drains the stream, calling each (when not nil) for every message. It returns the
// first error the engine reports in the stream, the first error each returns, or an error
// reading the stream; nil at its end.
func Read(r io.Reader, each func(Message) error) error {
	dec := json.NewDecoder(r)
	for {
		var msg Message
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read engine response: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if each != nil {
			if err := each(msg); err != nil {
				return err
			}
		}
	}
}

// Downloads adds up a pull's "Downloading" progress over its layers. The zero value is ready.
type Downloads struct {
	sizes, got map[string]int64 // by layer ID
	// Done is the bytes downloaded so far and Total the sizes of the layers seen so far, all
	// layers together.
	Done, Total int64
}

// Add takes one message of the stream and reports whether it was a download update.
func (d *Downloads) Add(m Message) bool {
	if m.Status != "Downloading" {
		return false
	}
	if d.sizes == nil {
		d.sizes, d.got = map[string]int64{}, map[string]int64{}
	}
	if m.ProgressDetail.Total > d.sizes[m.ID] {
		d.Total += m.ProgressDetail.Total - d.sizes[m.ID]
		d.sizes[m.ID] = m.ProgressDetail.Total
	}
	if m.ProgressDetail.Current > d.got[m.ID] {
		d.Done += m.ProgressDetail.Current - d.got[m.ID]
		d.got[m.ID] = m.ProgressDetail.Current
	}
	return true
}
