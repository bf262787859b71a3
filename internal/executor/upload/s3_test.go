package upload

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/computehorde/horde/internal/protocol"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const testBucket = "outputs"

// fakeS3 is an in-process S3 on loopback with one bucket, and a client that presigns for it.
func fakeS3(t *testing.T) *minio.Client {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4("AKIATESTKEY", "test-secret-key", ""),
		Secure: false,
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func getObject(t *testing.T, c *minio.Client, key string) []byte {
	t.Helper()
	obj, err := c.GetObject(context.Background(), testBucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return data
}

func presignPut(t *testing.T, c *minio.Client, key string) string {
	t.Helper()
	u, err := c.PresignedPutObject(context.Background(), testBucket, key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// presignPost returns the POST URL and its form fields, sorted for a stable request.
func presignPost(t *testing.T, c *minio.Client, key string) (string, *protocol.OrderedMap[string]) {
	t.Helper()
	p := minio.NewPostPolicy()
	for _, err := range []error{
		p.SetBucket(testBucket), p.SetKey(key), p.SetExpires(time.Now().Add(time.Hour)), p.SetContentLengthRange(1, 10<<20),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	u, form, err := c.PresignedPostPolicy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	m := &protocol.OrderedMap[string]{}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range form {
			if !yield(k) {
				return
			}
		}
	}) {
		m.Set(k, form[k])
	}
	return u.String(), m
}

func TestS3(t *testing.T) {
	c := fakeS3(t)
	out := t.TempDir()
	want := sampleOutputs(t, out)
	single := bytes.Repeat([]byte("s3 payload "), 20_000)
	writeFile(t, out, "results/single.bin", single)
	want["results/single.bin"] = string(single)
	u, _ := newUploader(t, Config{})
	ctx := context.Background()
	upload := func(up *protocol.OutputUpload) {
		t.Helper()
		tmp := t.TempDir()
		if _, err := u.Upload(ctx, up, out, tmp); err != nil {
			t.Fatalf("%s: %v", up.Type(), err)
		}
		checkEmpty(t, tmp)
	}

	upload(&protocol.OutputUpload{SingleFilePut: &protocol.SingleFilePutUpload{
		URL: presignPut(t, c, "single-put.bin"), RelativePath: "results/single.bin"}})
	if got := getObject(t, c, "single-put.bin"); !bytes.Equal(got, single) {
		t.Errorf("single_file_put: stored %d bytes, want %d", len(got), len(single))
	}

	postURL, form := presignPost(t, c, "single-post.bin")
	upload(&protocol.OutputUpload{SingleFilePost: &protocol.SingleFilePostUpload{
		URL: postURL, FormFields: form, RelativePath: "results/single.bin"}})
	if got := getObject(t, c, "single-post.bin"); !bytes.Equal(got, single) {
		t.Errorf("single_file_post: stored %d bytes, want %d", len(got), len(single))
	}

	upload(&protocol.OutputUpload{ZipAndHTTPPut: &protocol.ZipAndHTTPPutUpload{URL: presignPut(t, c, "jobs/put.zip")}})
	sameMap(t, unzipEntries(t, getObject(t, c, "jobs/put.zip")), want)

	postURL, form = presignPost(t, c, "jobs/post.zip")
	upload(&protocol.OutputUpload{ZipAndHTTPPost: &protocol.ZipAndHTTPPostUpload{URL: postURL, FormFields: form}})
	sameMap(t, unzipEntries(t, getObject(t, c, "jobs/post.zip")), want)
}
