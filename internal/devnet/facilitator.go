package devnet

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/computehorde/horde/internal/blob"
	"github.com/computehorde/horde/internal/facilitator"
	"github.com/computehorde/horde/internal/keys"
	"github.com/computehorde/horde/sdk"
)

// grantKey makes the dev user's grant idempotent: one per facilitator database, however
// often the devnet restarts on it.
const grantKey = "horde-dev:welcome"

// startFacilitator serves the facilitator on a loopback port: the users' API and pages, the
// validators' channel (/ws/v0/) and the blob store that jobs' outputs are uploaded to.
func (d *Devnet) startFacilitator(ctx, runCtx context.Context) error {
	key, err := keys.FromURI(FacilitatorURI)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	d.FacilitatorHotkey = key.SS58()
	// Kept in the data dir: login tokens, the pages' sessions and presigned uploads of
	// queued jobs then survive a restart.
	secret, err := keptSecret(filepath.Join(d.cfg.DataDir, "facilitator-secret"), 48)
	if err != nil {
		return err
	}
	lis, err := d.listen("facilitator")
	if err != nil {
		return err
	}
	d.FacilitatorURL = "http://" + lis.Addr().String()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("blobs"))
	blobs, err := blob.NewLocal(filepath.Join(d.cfg.DataDir, "blobs"), d.FacilitatorURL, mac.Sum(nil), 1<<30)
	if err != nil {
		lis.Close()
		return fmt.Errorf("devnet: %w", err)
	}
	validators := make([]string, 0, len(d.Validators))
	for _, v := range d.Validators {
		validators = append(validators, v.Hotkey)
	}
	// Users share the capacity by their stake on chain, as with `horde facilitator run`.
	stake, err := d.startUserStakes(ctx, runCtx)
	if err != nil {
		lis.Close()
		return err
	}
	// No image check: the job images exist only in the local engine.
	d.Facilitator, err = facilitator.New(facilitator.Config{Store: d.FacilitatorStore, Keypair: key, Validators: validators,
		Classes: d.Classes, TokenSecret: []byte(secret), Blobs: blobs, BlobHandler: blobs.Handler(), Stake: stake, Logger: d.log})
	if err != nil {
		lis.Close()
		return err
	}
	if err := d.Facilitator.Recover(ctx); err != nil {
		lis.Close()
		return fmt.Errorf("devnet: recover the facilitator's jobs of an earlier run: %w", err)
	}
	// The validators' channels are hijacked connections that Shutdown does not wait for:
	// they end with runCtx.
	srv := &http.Server{Handler: d.Facilitator.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return runCtx }}
	d.servers = append(d.servers, srv)
	d.wg.Go(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("facilitator server stopped", "err", err)
		}
	})
	d.wg.Go(func() { _ = d.Facilitator.Run(runCtx) })
	return nil
}

// linkFacilitator links every validator to the facilitator, waits until each has told it its
// free executors, and funds the dev user.
func (d *Devnet) linkFacilitator(ctx, runCtx context.Context) error {
	ws := "ws" + strings.TrimPrefix(d.FacilitatorURL, "http") + "/ws/v0/"
	for _, v := range d.Validators {
		d.wg.Go(func() { _ = v.Validator.RunFacilitatorLink(runCtx, ws) })
	}
	if err := waitFor(ctx, "the validators' links to the facilitator", func() string {
		up := d.Facilitator.Connected()
		var missing []string
		for _, v := range d.Validators {
			if free, ok := up[v.Hotkey]; !ok || free.Total() == 0 {
				missing = append(missing, v.URI)
			}
		}
		return strings.Join(missing, ", ")
	}); err != nil {
		return err
	}
	return d.setUpUser(ctx)
}

// setUpUser grants the dev user its credits (once per database) and gives it an API key:
// the one kept in the data dir while the facilitator still takes it, else a new one,
// created through the API after signing in with the user's hotkey, as a user would.
func (d *Devnet) setUpUser(ctx context.Context) error {
	k, err := keys.FromURI(UserURI)
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	d.User = User{URI: UserURI, Hotkey: k.SS58()}
	if _, err := d.Facilitator.Grant(ctx, d.User.Hotkey, d.cfg.UserCredits, grantKey); err != nil {
		return fmt.Errorf("devnet: grant the dev user's credits: %w", err)
	}
	path := filepath.Join(d.cfg.DataDir, "dev-user-api-key")
	if b, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(b))
		c, err := sdk.New(d.FacilitatorURL, sdk.WithAPIKey(key), sdk.WithHTTPClient(d.http), sdk.WithRetries(0))
		if err == nil {
			if _, err = c.Account(ctx); err == nil {
				d.User.APIKey = key
				return nil
			}
		}
		d.log.Info("the kept API key of the dev user is no longer taken; creating another", "err", err)
	}
	c, err := sdk.New(d.FacilitatorURL, sdk.WithSigner(signer{k}), sdk.WithHTTPClient(d.http))
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	created, err := c.CreateKey(ctx, "horde dev")
	if err != nil {
		return fmt.Errorf("devnet: create the dev user's API key: %w", err)
	}
	if err := os.WriteFile(path, []byte(created.Key+"\n"), 0o600); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	d.User.APIKey = created.Key
	return nil
}

// signer signs the facilitator's login nonce with a dev hotkey.
type signer struct{ k *keys.Keypair }

func (s signer) SS58() string { return s.k.SS58() }
func (s signer) SignMessage(m []byte) ([]byte, error) {
	sig := s.k.Sign(m)
	return sig[:], nil
}

// UserClient returns a client of the facilitator authenticated as the dev user, with its
// API key. Its connections are closed with the devnet.
func (d *Devnet) UserClient() (*sdk.Client, error) {
	if d.Facilitator == nil {
		return nil, errors.New("devnet: no facilitator: start the devnet with Config.Facilitator")
	}
	return sdk.New(d.FacilitatorURL, sdk.WithAPIKey(d.User.APIKey), sdk.WithHTTPClient(d.http))
}

// HelloUserJob returns the hello job as the dev user submits it to the facilitator.
func (d *Devnet) HelloUserJob(args ...string) sdk.JobSpec {
	j := d.HelloJob(args...)
	return sdk.JobSpec{ExecutorClass: string(j.ExecutorClass), DockerImage: j.DockerImage, Args: j.Args,
		DownloadTimeLimit: j.DownloadTimeLimit, ExecutionTimeLimit: j.ExecutionTimeLimit, UploadTimeLimit: j.UploadTimeLimit}
}
