package facilitator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/computehorde/horde/internal/egress"
)

// ErrImageNotFound reports an image its registry says does not exist: a typo caught at
// submit time is the user's error, never a miner's failure.
var ErrImageNotFound = errors.New("facilitator: image not found")

// ImageChecker asks an image's registry whether the image exists (a HEAD of its manifest,
// with an anonymous token where the registry asks for one). Only a registry that answers
// "no such manifest" refuses a job: an unreachable registry, a private image or any other
// answer lets it through, since the miner may well be able to pull it. Requests dial through
// the egress policy, so a user cannot make the facilitator probe internal addresses.
type ImageChecker struct {
	client *http.Client
	// insecure are the registry hosts reached over plain HTTP.
	insecure []string

	mu    sync.Mutex
	cache map[string]imageVerdict
}

type imageVerdict struct {
	err error
	at  time.Time
}

const (
	imageCheckTimeout = 5 * time.Second
	imageCacheFor     = time.Minute
	maxImageCache     = 10_000
)

// NewImageChecker returns a checker dialling through policy; insecure lists registry hosts
// ("host:port") spoken to over plain HTTP.
func NewImageChecker(policy egress.Policy, insecure []string) *ImageChecker {
	tr := policy.Transport(egress.DefaultDialer())
	tr.ResponseHeaderTimeout = imageCheckTimeout
	return &ImageChecker{client: &http.Client{Transport: tr, Timeout: imageCheckTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		}}, insecure: insecure, cache: map[string]imageVerdict{}}
}

// Check returns an error wrapping ErrImageNotFound when ref's registry says it has no such
// image, nil otherwise.
func (c *ImageChecker) Check(ctx context.Context, ref string) error {
	c.mu.Lock()
	if v, ok := c.cache[ref]; ok && time.Since(v.at) < imageCacheFor {
		c.mu.Unlock()
		return v.err
	}
	c.mu.Unlock()
	err := c.check(ctx, ref)
	c.mu.Lock()
	if len(c.cache) >= maxImageCache {
		clear(c.cache)
	}
	c.cache[ref] = imageVerdict{err: err, at: time.Now()}
	c.mu.Unlock()
	return err
}

func (c *ImageChecker) check(ctx context.Context, ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil // the syntax check reports it
	}
	host, path := reference.Domain(named), reference.Path(named)
	if host == "docker.io" {
		host = "registry-1.docker.io"
	}
	tag := "latest"
	if d, ok := named.(reference.Digested); ok {
		tag = d.Digest().String()
	} else if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	scheme := "https"
	if slices.Contains(c.insecure, host) {
		scheme = "http"
	}
	manifest := scheme + "://" + host + "/v2/" + path + "/manifests/" + tag
	ctx, cancel := context.WithTimeout(ctx, imageCheckTimeout)
	defer cancel()
	status, challenge := c.head(ctx, manifest, "")
	if status == http.StatusUnauthorized && challenge != "" {
		tok := c.token(ctx, challenge, path)
		if tok == "" {
			return nil
		}
		status, _ = c.head(ctx, manifest, tok)
	}
	if status == http.StatusNotFound {
		return fmt.Errorf("%w: %s answered that %s has no %s", ErrImageNotFound, host, path, tag)
	}
	return nil
}

var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// head returns the manifest's status (0 when the registry did not answer) and, on 401, the
// WWW-Authenticate challenge.
func (c *ImageChecker) head(ctx context.Context, u, token string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0, ""
	}
	req.Header.Set("Accept", manifestTypes)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// token fetches an anonymous pull token from a Bearer challenge; "" when there is none.
func (c *ImageChecker) token(ctx context.Context, challenge, path string) string {
	params, ok := strings.CutPrefix(challenge, "Bearer ")
	if !ok {
		return ""
	}
	kv := map[string]string{}
	for _, p := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	realm, err := url.Parse(kv["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") {
		return ""
	}
	q := realm.Query()
	if s := kv["service"]; s != "" {
		q.Set("service", s)
	}
	q.Set("scope", "repository:"+path+":pull")
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return ""
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	var t struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&t) != nil {
		return ""
	}
	if t.Token != "" {
		return t.Token
	}
	return t.AccessToken
}
