package jobimage_test

import (
	"context"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// recordingClient keeps the archive it is asked to load and reports every image as missing.
type recordingClient struct{ archive []byte }

func (c *recordingClient) ImageInspect(ctx context.Context, id string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	return image.InspectResponse{}, cerrdefs.ErrNotFound.WithMessage("no such image: " + id)
}

func (c *recordingClient) ImageLoad(ctx context.Context, r io.Reader, _ ...client.ImageLoadOption) (image.LoadResponse, error) {
	b, err := io.ReadAll(r)
	c.archive = b
	return image.LoadResponse{Body: io.NopCloser(strings.NewReader(`{"stream":"Loaded image"}`))}, err
}

func (c *recordingClient) ImageRemove(ctx context.Context, id string, _ image.RemoveOptions) ([]image.DeleteResponse, error) {
	return nil, nil
}
