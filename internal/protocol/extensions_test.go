package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/computehorde/horde/internal/keys"
)

// TestExtensionGoldens holds horde's own messages (V0WorkIntervalReceiptRequest,
// V0ClassValuesMessage, the class_not_offered decline, a WorkInterval receipt line, the
// facilitator extensions V0ClassValuesUpdate, V0JobCheatDetected, V0JobWorkReport and
// V0ExecutorCapacityUpdate, V1AuthenticationRequest) to golden
// bytes in testdata/extension_messages.json, with the same checks as upstream's vectors:
// each decodes through exactly the unions that accept it and re-encodes byte for byte, its
// signing blob is rebuilt byte for byte, and its embedded signatures (by //Alice and
// //Bob) verify over the bytes this package rebuilds.
func TestExtensionGoldens(t *testing.T) {
	data, err := os.ReadFile("testdata/extension_messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(data, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Messages) != 9 || len(vf.SigningBlobs) != 1 {
		t.Fatalf("%d messages and %d blobs, want 9 and 1", len(vf.Messages), len(vf.SigningBlobs))
	}
	checkVectorMessages(t, &vf)

	b := vf.SigningBlobs[0]
	var p WorkIntervalReceiptPayload
	if err := json.Unmarshal([]byte(*b.SourceJSON), &p); err != nil {
		t.Fatal(err)
	}
	if got := p.BlobForSigning(); !bytes.Equal(got, mustHex(t, b.BlobHex)) || string(got) != *b.Blob {
		t.Errorf("blob differs\n got: %s\nwant: %s", got, *b.Blob)
	}

	sigs := embeddedSignatures(t, &vf)
	if len(sigs) != 3 {
		t.Fatalf("%d embedded signatures, want 3", len(sigs))
	}
	for _, s := range sigs {
		if err := keys.Verify(s.signer, s.message, s.signature); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
		if err := keys.Verify(s.signer, append(bytes.Clone(s.message), ' '), s.signature); !errors.Is(err, keys.ErrBadSignature) {
			t.Errorf("%s: a changed blob verified (%v)", s.name, err)
		}
	}
}
