package volume

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/computehorde/horde/internal/egress"
	"github.com/computehorde/horde/internal/egress/egresstest"
	"github.com/computehorde/horde/internal/protocol"
)

func payload(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("payload")) }

// TestEgressLoopbackRefused: with the default policy a volume on loopback is refused before
// any connection (the listener sees none), the error names the address and the rule, and the
// refusal is not retried.
func TestEgressLoopbackRefused(t *testing.T) {
	srv := egresstest.Serve(t, "127.0.0.1:0", http.HandlerFunc(payload))
	for name, v := range map[string]protocol.Volume{
		"single_file": singleFile(srv.URL+"/f?sig=secret", "f"),
		"zip_url":     zipURL(srv.URL + "/v.zip"),
		"by name":     singleFile(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/f", "f"),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			f, rec := newFetcher(t, Config{Egress: egress.Policy{Allow: []netip.Prefix{}}}) // non-nil: nothing allowed
			_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
			if !egress.IsBlocked(err) {
				t.Fatalf("Fetch = %v, want a refused dial", err)
			}
			for _, want := range []string{"127.0.0.1", "loopback", "--allow-egress"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the query: %v", err)
			}
			if got := rec.got(); len(got) > 0 {
				t.Errorf("a refusal was retried (sleeps %v)", got)
			}
			e.checkContained(t)
		})
	}
	if n := srv.Conns(); n != 0 {
		t.Errorf("the loopback listener saw %d connections, want none", n)
	}
}

// TestEgressRedirectToLoopbackRefused: the first host is allowed (127.0.0.1/32 only) and
// redirects to another loopback address (127.0.0.2), which is not: the redirect is refused
// at its dial, and the second listener sees no connection.
func TestEgressRedirectToLoopbackRefused(t *testing.T) {
	inner := egresstest.Serve(t, "127.0.0.2:0", http.HandlerFunc(payload))
	outer := egresstest.Serve(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL+"/latest/meta-data/iam", http.StatusFound)
	}))
	e := newEnv(t)
	allow, _ := egress.ParseAllow("127.0.0.1")
	f, _ := newFetcher(t, Config{Egress: egress.Policy{Allow: allow}})
	v := singleFile(outer.URL+"/start", "creds")
	_, err := f.Fetch(t.Context(), &v, e.vol, e.tmp)
	var b *egress.BlockedError
	if !errors.As(err, &b) || b.Addr != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("Fetch = %v, want the redirect to 127.0.0.2 refused", err)
	}
	if outer.Conns() != 1 || inner.Conns() != 0 {
		t.Errorf("connections: allowed host %d (want 1), redirect target %d (want 0)", outer.Conns(), inner.Conns())
	}
	if len(e.files(t)) != 0 {
		t.Errorf("files written: %v", e.files(t))
	}
}

// TestEgressMetadataAndPrivateRefused: addresses that must never be reached from a test are
// checked through the same transport as production's, on a base dialer whose pre-connect hook
// refuses everything (so nothing can leave the machine): the policy stops them first.
func TestEgressMetadataAndPrivateRefused(t *testing.T) {
	var hook egresstest.Dialer
	client := hook.Client(egress.Policy{})
	for _, url := range []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://10.0.0.1/v.zip",
		"http://[fd00:ec2::254]/latest",
	} {
		e := newEnv(t)
		f, _ := newFetcher(t, Config{HTTPClient: client, HuggingFaceEndpoint: url})
		for _, v := range []protocol.Volume{zipURL(url), singleFile(url, "f"), *hfVolume(protocol.HuggingfaceVolume{RepoID: "org/model"})} {
			if _, err := f.Fetch(t.Context(), &v, e.vol, e.tmp); !egress.IsBlocked(err) {
				t.Errorf("%s (%s): %v, want a refused dial", url, v.Type(), err)
			}
		}
	}
	if n := hook.Reached(); n != 0 {
		t.Errorf("the pre-connect hook was reached %d times, want 0", n)
	}
}
