package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"

	"github.com/computehorde/horde/internal/enginemsg"
	"github.com/computehorde/horde/internal/executor"
)

// RegistryAuth is the credentials for one registry: a username and password, or an identity
// (OAuth refresh) token. Its String hides the secrets.
type RegistryAuth struct {
	Username      string
	Password      string
	IdentityToken string
}

// String implements fmt.Stringer without the secrets, so logging the options is safe.
func (a RegistryAuth) String() string {
	return fmt.Sprintf("RegistryAuth{Username: %q, Password: %s, IdentityToken: %s}", a.Username, redacted(a.Password), redacted(a.IdentityToken))
}

// GoString keeps %#v from printing the secrets too.
func (a RegistryAuth) GoString() string { return a.String() }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "<redacted>"
}

// Causes of a failed pull, wrapped by EnsureImage's errors. The first three are the job's
// (they wrap executor.ErrBadImage); a timeout, like an unreachable registry or engine, is
// the host's.
var (
	ErrImageAuth     = fmt.Errorf("%w: registry refused authentication", executor.ErrBadImage)
	ErrImageNotFound = fmt.Errorf("%w: image not found", executor.ErrBadImage)
	ErrImageTooLarge = fmt.Errorf("%w: image too large", executor.ErrBadImage)
	ErrPullTimeout   = errors.New("pull timed out")
)

// dockerHubHost is the canonical name of Docker Hub in references and in Options.Registries.
const dockerHubHost = "docker.io"

// registryHost maps a registry name to its key in Runtime.registries: lower case, scheme and
// path dropped (a docker config.json key such as "https://index.docker.io/v1/" works), Docker
// Hub's aliases folded into docker.io.
func registryHost(name string) string {
	h := strings.ToLower(strings.TrimSpace(name))
	if _, rest, ok := strings.Cut(h, "://"); ok {
		h = rest
	}
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return dockerHubHost
	}
	return h
}

func canonicalRegistries(in map[string]RegistryAuth) (map[string]RegistryAuth, error) {
	out := make(map[string]RegistryAuth, len(in))
	from := map[string]string{}
	for name, auth := range in {
		h := registryHost(name)
		if h == "" {
			return nil, fmt.Errorf("docker: Options.Registries has a key %q that names no registry host", name)
		}
		if prev, dup := from[h]; dup && out[h] != auth {
			return nil, fmt.Errorf("docker: Options.Registries keys %q and %q both name registry %s, with different credentials", prev, name, h)
		}
		out[h], from[h] = auth, name
	}
	return out, nil
}

// EnsureImage implements executor.Runtime. A local copy is used as is; otherwise the image is
// pulled with the credentials for its registry, within Options.PullTimeout and
// Options.MaxImageBytes. Errors name the image, the registry and the cause (ErrImageAuth,
// ErrImageNotFound, ErrImageTooLarge, ErrPullTimeout).
func (r *Runtime) EnsureImage(ctx context.Context, ref string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("docker: %w: reference %q: %w", executor.ErrBadImage, ref, err)
	}
	if _, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspect image %s: %w", ref, err)
	}
	host := registryHost(reference.Domain(named))
	if err := r.pull(ctx, ref, host); err != nil {
		return err
	}
	if r.opts.MaxImageBytes > 0 {
		// Backstop: the download sizes of the progress stream are compressed sizes, and an
		// engine may report none at all.
		info, err := r.cli.ImageInspect(ctx, ref)
		if err != nil {
			return fmt.Errorf("docker: image %s missing after pull from registry %s: %w", ref, host, err)
		}
		if info.Size > r.opts.MaxImageBytes {
			r.dropImage(ref)
			return fmt.Errorf("docker: pull image %s from registry %s: %w: %d > %d bytes unpacked (Options.MaxImageBytes); removed it",
				ref, host, ErrImageTooLarge, info.Size, r.opts.MaxImageBytes)
		}
	} else if _, err := r.cli.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("docker: image %s missing after pull from registry %s: %w", ref, host, err)
	}
	return nil
}

// Preload makes every image of refs available (EnsureImage each, skipping present ones). It
// goes on past failures and returns them joined, each naming its image.
func (r *Runtime) Preload(ctx context.Context, refs []string) error {
	var errs []error
	for _, ref := range refs {
		if err := r.EnsureImage(ctx, ref); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tooLargeError reports a pull whose layers add up past the bound.
type tooLargeError struct{ total int64 }

func (e tooLargeError) Error() string { return fmt.Sprintf("layers of %d bytes", e.total) }

func (r *Runtime) pull(ctx context.Context, ref, host string) error {
	fail := func(cause error, format string, args ...any) error {
		return fmt.Errorf("docker: pull image %s from registry %s: %w: %s", ref, host, cause, fmt.Sprintf(format, args...))
	}
	var opts image.PullOptions
	auth, haveAuth := r.registries[host]
	if haveAuth {
		enc, err := registry.EncodeAuthConfig(registry.AuthConfig{
			Username: auth.Username, Password: auth.Password, IdentityToken: auth.IdentityToken, ServerAddress: host,
		})
		if err != nil {
			return fmt.Errorf("docker: pull image %s: encode credentials for registry %s: %w", ref, host, err)
		}
		opts.RegistryAuth = enc
	}
	pctx, cancel := context.WithTimeout(ctx, r.opts.PullTimeout)
	defer cancel()
	r.log.Info("pulling image", "image", ref, "registry", host, "credentials", haveAuth)

	err := func() error {
		rc, err := r.cli.ImagePull(pctx, ref, opts)
		if err != nil {
			return err
		}
		defer rc.Close() // on a bound breach this drops the connection, which ends the engine's pull
		// A pull of a large image takes minutes: say how far it got, every pullProgressEvery.
		last := time.Now()
		return readPull(rc, r.opts.MaxImageBytes, func(done, total int64) {
			if now := time.Now(); now.Sub(last) >= pullProgressEvery {
				last = now
				r.log.Info("pulling image", "image", ref, "downloaded_mib", done>>20, "of_mib", total>>20)
			}
		})
	}()
	if err == nil {
		return nil
	}
	var tl tooLargeError
	switch {
	case errors.As(err, &tl):
		r.dropImage(ref) // in case the engine finished before it saw the connection go
		return fail(ErrImageTooLarge, "%d > %d bytes while downloading (Options.MaxImageBytes)", tl.total, r.opts.MaxImageBytes)
	case ctx.Err() != nil:
		return fmt.Errorf("docker: pull image %s from registry %s: %w", ref, host, ctx.Err())
	case pctx.Err() != nil:
		return fail(ErrPullTimeout, "no complete image after %v (Options.PullTimeout)", r.opts.PullTimeout)
	}
	msg := redactURLs(err.Error())
	switch {
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || authMessage.MatchString(msg):
		if !haveAuth {
			return fail(ErrImageAuth, "%s (no credentials for %s in Options.Registries)", msg, host)
		}
		return fail(ErrImageAuth, "%s (check the credentials for %s in Options.Registries)", msg, host)
	case cerrdefs.IsNotFound(err) || notFoundMessage.MatchString(msg):
		return fail(ErrImageNotFound, "%s", msg)
	}
	return fmt.Errorf("docker: pull image %s from registry %s: %s", ref, host, msg)
}

// The engine reports registry errors as text; these match the wordings of dockerd and of the
// registries it relays.
var (
	authMessage     = regexp.MustCompile(`(?i)unauthori[sz]ed|authentication required|no basic auth credentials|access.* denied|denied:|incorrect username or password`)
	notFoundMessage = regexp.MustCompile(`(?i)manifest unknown|not found|does not exist|name unknown`)
)

// dropImage removes ref if present, quietly: it runs after a failed pull, whose error matters
// more.
func (r *Runtime) dropImage(ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := r.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		r.log.Warn("could not remove a rejected image", "image", ref, "err", redactURLs(err.Error()))
	}
}

// pullProgressEvery is how often a running pull logs its progress.
const pullProgressEvery = 5 * time.Second

// readPull drains a pull's progress stream. It returns the first error the engine reports in
// it, or a tooLargeError once the download sizes of the layers (the totals of their
// "Downloading" progress) add up past bound (when bound > 0). progress, if not nil, is called
// on each download update with the bytes downloaded and the sizes known so far, all layers
// together.
func readPull(rd io.Reader, bound int64, progress func(done, total int64)) error {
	var d enginemsg.Downloads
	return enginemsg.Read(rd, func(msg enginemsg.Message) error {
		if !d.Add(msg) {
			return nil
		}
		if bound > 0 && d.Total > bound {
			return tooLargeError{d.Total}
		}
		if progress != nil {
			progress(d.Done, d.Total)
		}
		return nil
	})
}

// urlQuery matches the query of a URL, which may carry a presigned signature or a token.
var urlQuery = regexp.MustCompile(`(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'?]*)\?[^\s"']*`)

// redactURLs strips the query strings of the URLs in s.
func redactURLs(s string) string { return urlQuery.ReplaceAllString(s, "$1") }
