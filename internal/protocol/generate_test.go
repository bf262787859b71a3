package protocol

import (
	"bytes"
	"os"
	"testing"

	"github.com/computehorde/horde/internal/protocol/codegen"
)

// TestGeneratedCodeUpToDate regenerates the codecs from the models' tags and fails if the
// committed file differs: a model changed without `go generate ./internal/protocol`.
func TestGeneratedCodeUpToDate(t *testing.T) {
	want, err := codegen.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(codegen.GeneratedFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run `go generate ./internal/protocol` and commit the result", codegen.GeneratedFile)
	}
}

// TestJobUUIDOf: every message that names a job answers JobUUIDOf, decoded (a pointer) or
// as a value; the others do not.
func TestJobUUIDOf(t *testing.T) {
	const id = "5b0c3c5e-8d6a-4f0e-9a51-3f1f0c2d7e11"
	for _, m := range []Message{
		&V0JobRequest{JobUUID: id}, V0InitialJobRequest{JobUUID: id}, &V0AcceptJobRequest{JobUUID: id},
		&V0DeclineJobRequest{JobUUID: id}, &V0ExecutorReadyRequest{JobUUID: id}, &V0VolumesReadyRequest{JobUUID: id},
		&V0StreamingJobReadyRequest{JobUUID: id}, &V0ExecutionDoneRequest{JobUUID: id}, &V0MachineSpecsRequest{JobUUID: id},
		&V0JobFinishedRequest{JobUUID: id}, &V0JobFailedRequest{JobUUID: id}, &V0HordeFailedRequest{JobUUID: id},
		&V0ExecutorFailedRequest{JobUUID: id}, &V0StreamingJobNotReadyRequest{JobUUID: id},
		&V2JobRequest{UUID: id}, &V0JobStatusUpdate{UUID: id}, &V0JobCheated{JobUUID: id},
	} {
		if got, ok := JobUUIDOf(m); !ok || got != id {
			t.Errorf("%s: JobUUIDOf = %q, %v", m.MessageType(), got, ok)
		}
	}
	for _, m := range []Message{&GenericError{}, &ValidatorAuthForMiner{}, &V0ExecutorManifestRequest{}, &V0Heartbeat{}, Receipt{}} {
		if _, ok := JobUUIDOf(m); ok {
			t.Errorf("%s names a job", m.MessageType())
		}
	}
}
