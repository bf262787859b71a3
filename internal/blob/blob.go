// Package blob keeps what users' jobs produce when they name no upload target of their own:
// the executor uploads through a presigned URL, and the user downloads through a signed,
// expiring one. Two stores: Local (a directory, served by the facilitator itself) and S3 (any
// S3-compatible service, presigned with AWS Signature V4).
package blob

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Store hands out URLs for objects named by keys ("jobs/UUID/output.zip").
type Store interface {
	// PutURL is a URL that accepts one HTTP PUT of the object until ttl has passed.
	PutURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// GetURL is a URL that downloads the object until ttl has passed.
	GetURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// ErrBadKey reports a key with characters or segments a store refuses.
var ErrBadKey = errors.New("blob: bad key: use letters, digits, '-', '_', '.' and '/' between segments, no '..'")

var keyRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)

func checkKey(key string) error {
	if len(key) > 512 || !keyRE.MatchString(key) {
		return ErrBadKey
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." {
			return ErrBadKey
		}
	}
	return nil
}

// Local keeps objects in a directory and serves them at base + "/blobs/KEY" with URLs
// signed by an HMAC of the operation, the key and the expiry.
type Local struct {
	dir      string
	base     string
	secret   []byte
	maxBytes int64
	now      func() time.Time
}

// NewLocal returns a store in dir whose URLs start with baseURL (the facilitator's public
// URL); secret signs them (random when empty: URLs then die with the process); maxBytes
// bounds one object.
func NewLocal(dir, baseURL string, secret []byte, maxBytes int64) (*Local, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("blob: base URL %q is not an http(s) URL", baseURL)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if len(secret) == 0 {
		secret = []byte(rand.Text() + rand.Text())
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	return &Local{dir: dir, base: strings.TrimRight(baseURL, "/"), secret: secret, maxBytes: maxBytes, now: time.Now}, nil
}

func (l *Local) sign(op, key string, exp int64) string {
	h := hmac.New(sha256.New, l.secret)
	fmt.Fprintf(h, "%s\x00%s\x00%d", op, key, exp)
	return hex.EncodeToString(h.Sum(nil))
}

func (l *Local) url(op, key string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	exp := l.now().Add(ttl).Unix()
	return l.base + "/blobs/" + key + "?op=" + op + "&exp=" + strconv.FormatInt(exp, 10) + "&sig=" + l.sign(op, key, exp), nil
}

// PutURL implements Store.
func (l *Local) PutURL(_ context.Context, key string, ttl time.Duration) (string, error) {
	return l.url("put", key, ttl)
}

// GetURL implements Store.
func (l *Local) GetURL(_ context.Context, key string, ttl time.Duration) (string, error) {
	return l.url("get", key, ttl)
}

// Handler serves PUT and GET of /blobs/KEY for URLs this store signed.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/blobs/")
		if checkKey(key) != nil {
			http.Error(w, "bad object key", http.StatusBadRequest)
			return
		}
		op := map[string]string{http.MethodPut: "put", http.MethodGet: "get", http.MethodHead: "get"}[r.Method]
		if op == "" {
			http.Error(w, "PUT or GET", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
		if err != nil || q.Get("op") != op || !hmac.Equal([]byte(q.Get("sig")), []byte(l.sign(op, key, exp))) {
			http.Error(w, "this URL was not signed for this", http.StatusForbidden)
			return
		}
		if l.now().Unix() > exp {
			http.Error(w, "this URL expired", http.StatusForbidden)
			return
		}
		path := filepath.Join(l.dir, filepath.FromSlash(key))
		if op == "get" {
			http.ServeFile(w, r, path)
			return
		}
		if r.ContentLength > l.maxBytes {
			http.Error(w, fmt.Sprintf("the object is over %d bytes", l.maxBytes), http.StatusRequestEntityTooLarge)
			return
		}
		if err := l.write(path, http.MaxBytesReader(w, r.Body, l.maxBytes)); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("the object is over %d bytes", l.maxBytes), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot store the object", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// write stores the body whole or not at all: a temporary file renamed into place.
func (l *Local) write(path string, body io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, body); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// S3 keeps objects in a bucket of an S3-compatible service.
type S3 struct {
	mc     *minio.Client
	bucket string
}

// S3Config names the service, the bucket and the credentials.
type S3Config struct {
	Endpoint  string // host[:port]
	Secure    bool   // https
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
}

// NewS3 returns a store in c's bucket.
func NewS3(c S3Config) (*S3, error) {
	if c.Endpoint == "" || c.Bucket == "" || c.AccessKey == "" || c.SecretKey == "" {
		return nil, errors.New("blob: s3 needs endpoint, bucket, access_key and secret_key")
	}
	mc, err := minio.New(c.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.Secure, Region: c.Region})
	if err != nil {
		return nil, fmt.Errorf("blob: s3: %w", err)
	}
	return &S3{mc: mc, bucket: c.Bucket}, nil
}

// PutURL implements Store.
func (s *S3) PutURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	u, err := s.mc.PresignedPutObject(ctx, s.bucket, key, ttl)
	if err != nil {
		return "", fmt.Errorf("blob: presign put %s: %w", key, err)
	}
	return u.String(), nil
}

// GetURL implements Store.
func (s *S3) GetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	u, err := s.mc.PresignedGetObject(ctx, s.bucket, key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("blob: presign get %s: %w", key, err)
	}
	return u.String(), nil
}
