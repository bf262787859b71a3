package upload

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/egress/egresstest"
	"github.com/computehorde/horde/internal/protocol"
)

// TestEgressLoopbackRefused: with the default policy an upload to loopback is refused before
// any connection (a real listener counts none), with an error naming the address and the
// rule, and is not retried.
func TestEgressLoopbackRefused(t *testing.T) {
	srv := egresstest.Serve(t, "127.0.0.1:0", http.NotFoundHandler())
	out := t.TempDir()
	writeFile(t, out, "f", []byte("secret output"))
	u, s := newUploader(t, Config{Egress: egress.Policy{Allow: []netip.Prefix{}}}) // non-nil: nothing allowed
	base := srv.URL
	for _, up := range []*protocol.OutputUpload{
		{SingleFilePut: &protocol.SingleFilePutUpload{URL: base + "/put?sig=x", RelativePath: "f"}},
		{ZipAndHTTPPost: &protocol.ZipAndHTTPPostUpload{URL: base + "/post"}},
	} {
		_, err := u.Upload(context.Background(), up, out, t.TempDir())
		if !egress.IsBlocked(err) {
			t.Fatalf("%s: %v, want a refused dial", up.Type(), err)
		}
		for _, want := range []string{"127.0.0.1", "loopback", "--allow-egress"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
	if got := s.got(); len(got) > 0 {
		t.Errorf("a refusal was retried (sleeps %v)", got)
	}
	if n := srv.Conns(); n != 0 {
		t.Errorf("the loopback listener saw %d connections, want none", n)
	}
}

// TestEgressMetadataRefused: an upload to the metadata service or a private address is stopped
// by the policy before the base dialer's pre-connect hook (which refuses everything, so nothing
// can leave the machine).
func TestEgressMetadataRefused(t *testing.T) {
	var hook egresstest.Dialer
	u, _ := newUploader(t, Config{HTTPClient: hook.Client(egress.Policy{})})
	out := t.TempDir()
	writeFile(t, out, "f", []byte("data"))
	for _, url := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/put", "http://[::1]:9/put"} {
		_, err := u.Upload(context.Background(), &protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{URL: url, RelativePath: "f"}}, out, t.TempDir())
		if !egress.IsBlocked(err) {
			t.Errorf("%s: %v, want a refused dial", url, err)
		}
	}
	if n := hook.Reached(); n != 0 {
		t.Errorf("the pre-connect hook was reached %d times, want 0", n)
	}
}
