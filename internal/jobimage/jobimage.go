// Package jobimage assembles job images offline from one executable: no Dockerfile, no
// registry, no build toolchain at run time. The image has a single layer holding the executable at
// /bin/<name> and the empty directories /volume, /output and /tmp; it is written in the
// docker-archive (`docker save`) format and loaded through the Engine API.
//
// A dynamically linked executable (a plain `go build` with cgo, or any program linked against
// libc) also gets the host's dynamic loader and the shared libraries it needs, at the paths the
// host's loader finds them, so that `go build` and `go install` binaries work as well as
// CGO_ENABLED=0 ones. A static executable gets nothing more.
//
// Every image carries the label LabelContent, a digest over the executable, the libraries and
// the image settings, so Build skips the load when an image with the same tag and content exists.
package jobimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/computehorde/horde/internal/enginemsg"
)

// Labels put on every image Build makes.
const (
	// LabelBinary is the hex SHA-256 of the executable.
	LabelBinary = "horde.binary.sha256"
	// LabelContent is the hex SHA-256 over the executable, the loader and libraries copied in
	// with a dynamically linked one, and the image settings (name, entrypoint, cmd, env); Build
	// skips the load when the tag already carries the same value.
	LabelContent = "horde.content.sha256"
)

// ErrNotStatic is CheckStatic's report of an executable that needs a dynamic loader. Build
// accepts such executables (it copies the loader and libraries in); callers that want a single
// self-contained file, e.g. to ship it to hosts of unknown libc, check with CheckStatic.
var ErrNotStatic = errors.New("jobimage: executable is not statically linked")

// Client is the part of the Docker Engine client that Build uses; *client.Client implements it.
type Client interface {
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageLoad(ctx context.Context, input io.Reader, opts ...client.ImageLoadOption) (image.LoadResponse, error)
	ImageRemove(ctx context.Context, imageID string, opts image.RemoveOptions) ([]image.DeleteResponse, error)
}

var _ Client = (*client.Client)(nil)

// Spec describes one image.
type Spec struct {
	// Tag is the image reference to create, e.g. "horde/hello:dev". Required.
	Tag string
	// Binary is the path of an ELF executable. Required. It lands at /bin/<base name of
	// Binary>. If it is dynamically linked, its loader and shared libraries are taken from this
	// host (see the package documentation).
	Binary string
	// Entrypoint of the image; empty means ["/bin/<name>"].
	Entrypoint []string
	// Cmd is the default command (the arguments after the entrypoint); may be empty.
	Cmd []string
	// Env is extra "KEY=value" entries; PATH=/bin is always set first, and for a dynamically
	// linked Binary LD_LIBRARY_PATH next, unless Env sets it.
	Env []string
	// Labels are extra image labels; LabelBinary and LabelContent are added.
	Labels map[string]string
}

// Result says what Build did.
type Result struct {
	// ImageID is the loaded image's ID ("sha256:…").
	ImageID string
	// ContentDigest is the value of LabelContent.
	ContentDigest string
	// Loaded is false when an identical image was already present and the load was skipped.
	Loaded bool
}

// Build creates the image described by spec and loads it into the engine behind c, unless the
// tag already names an image with the same content digest. Assemble does the same and says what
// it did.
func Build(ctx context.Context, c Client, spec Spec) error {
	_, err := Assemble(ctx, c, spec)
	return err
}

// Assemble is Build returning the image ID and whether a load happened.
func Assemble(ctx context.Context, c Client, spec Spec) (Result, error) {
	if spec.Tag == "" {
		return Result{}, errors.New("jobimage: Spec.Tag is empty; name the image to create")
	}
	if spec.Binary == "" {
		return Result{}, errors.New("jobimage: Spec.Binary is empty; give the path of an executable")
	}
	arch, interp, err := inspectELF(spec.Binary)
	if err != nil {
		return Result{}, err
	}
	var rt runtimeFiles
	if interp != "" {
		if rt, err = resolveRuntime(spec.Binary, interp); err != nil {
			return Result{}, err
		}
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return Result{}, fmt.Errorf("jobimage: read executable: %w", err)
	}
	name := filepath.Base(spec.Binary)
	entrypoint := spec.Entrypoint
	if len(entrypoint) == 0 {
		entrypoint = []string{"/bin/" + name}
	}
	env := []string{"PATH=/bin"}
	if len(rt.libDirs) > 0 && !setsVar(spec.Env, "LD_LIBRARY_PATH") {
		env = append(env, "LD_LIBRARY_PATH="+strings.Join(rt.libDirs, ":"))
	}
	env = append(env, spec.Env...)

	binSum := sha256.Sum256(bin)
	binHex := hex.EncodeToString(binSum[:])
	content := contentDigest(binHex, name, arch, entrypoint, spec.Cmd, env, spec.Labels, rt.digests())

	// previous is the ID of an older build under this tag, removed once the new one is in.
	var previous string
	if existing, err := c.ImageInspect(ctx, spec.Tag); err == nil {
		if existing.Config != nil && existing.Config.Labels[LabelContent] == content {
			return Result{ImageID: existing.ID, ContentDigest: content}, nil
		}
		if existing.Config != nil && existing.Config.Labels[LabelContent] != "" {
			previous = existing.ID
		}
	} else if !cerrdefs.IsNotFound(err) {
		return Result{}, fmt.Errorf("jobimage: inspect %s: %w", spec.Tag, err)
	}

	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[LabelBinary] = binHex
	labels[LabelContent] = content

	archive, err := dockerArchive(archiveInput{
		tag: spec.Tag, name: name, bin: bin, arch: arch, runtime: rt.files,
		entrypoint: entrypoint, cmd: spec.Cmd, env: env, labels: labels,
	})
	if err != nil {
		return Result{}, err
	}
	resp, err := c.ImageLoad(ctx, bytes.NewReader(archive), client.ImageLoadWithQuiet(true))
	if err != nil {
		return Result{}, fmt.Errorf("jobimage: load %s: %w", spec.Tag, err)
	}
	err = enginemsg.Read(resp.Body, nil)
	resp.Body.Close()
	if err != nil {
		return Result{}, fmt.Errorf("jobimage: load %s: %w", spec.Tag, err)
	}
	loaded, err := c.ImageInspect(ctx, spec.Tag)
	if err != nil {
		return Result{}, fmt.Errorf("jobimage: inspect %s after load: %w", spec.Tag, err)
	}
	if loaded.Config == nil || loaded.Config.Labels[LabelContent] != content {
		return Result{}, fmt.Errorf("jobimage: %s loaded but does not carry label %s=%s", spec.Tag, LabelContent, content)
	}
	if previous != "" && previous != loaded.ID {
		// The older build is now untagged (unless tagged elsewhere or used by a container,
		// in which case the engine refuses and it stays): drop it so dev loops do not pile up
		// dangling images.
		_, _ = c.ImageRemove(ctx, previous, image.RemoveOptions{PruneChildren: true})
	}
	return Result{ImageID: loaded.ID, ContentDigest: content, Loaded: true}, nil
}

// goArches maps the ELF machines Go builds static executables for to their GOARCH.
var goArches = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
	elf.EM_ARM: "arm", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64"}

// CheckStatic checks that path is an ELF executable without a PT_INTERP program header (no
// dynamic loader needed) and returns its architecture as an OCI name ("amd64", "arm64", …).
// A dynamically linked file yields an error wrapping ErrNotStatic.
func CheckStatic(path string) (arch string, err error) {
	arch, interp, err := inspectELF(path)
	if err != nil {
		return "", err
	}
	if interp != "" {
		return "", fmt.Errorf("%w: %s is dynamically linked; build it with CGO_ENABLED=0", ErrNotStatic, path)
	}
	return arch, nil
}

// inspectELF checks that path is an ELF executable for a supported machine and returns its
// architecture as an OCI name and its PT_INTERP (the dynamic loader; "" if static).
func inspectELF(path string) (arch, interp string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("jobimage: %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", "", fmt.Errorf("jobimage: %s is an ELF %s, not an executable", path, f.Type)
	}
	arch, ok := goArches[f.Machine]
	if !ok {
		return "", "", fmt.Errorf("jobimage: %s is built for unsupported machine %s", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return "", "", fmt.Errorf("jobimage: %s: read PT_INTERP: %w", path, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
			if !filepath.IsAbs(interp) {
				return "", "", fmt.Errorf("jobimage: %s names the dynamic loader %q, not an absolute path", path, interp)
			}
			return arch, interp, nil
		}
	}
	return arch, "", nil
}

// resolveRuntime returns the loader interp and the shared libraries that the dynamically
// linked executable at path needs, from this host.
func resolveRuntime(path, interp string) (runtimeFiles, error) {
	f, err := elf.Open(path)
	if err != nil {
		return runtimeFiles{}, fmt.Errorf("jobimage: %s is not an ELF executable: %w", path, err)
	}
	r, err := newLibResolver(f)
	f.Close()
	if err != nil {
		return runtimeFiles{}, err
	}
	return r.resolve(path, interp)
}

// setsVar reports whether env has an entry for the variable name.
func setsVar(env []string, name string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == name {
			return true
		}
	}
	return false
}

// CompileStatic builds the Go package pkg (an import path or a ./relative directory, resolved
// from the current directory) into outPath with CGO_ENABLED=0, then checks the result is static.
// It needs the go command on PATH; it is meant for tests and dev tooling.
func CompileStatic(ctx context.Context, pkg, outPath string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("jobimage: compile %s: the go command is not on PATH; install Go or build the executable with CGO_ENABLED=0 yourself: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", outPath, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("jobimage: go build %s: %w\n%s", pkg, err, strings.TrimSpace(string(out)))
	}
	if _, err := CheckStatic(outPath); err != nil {
		return err
	}
	return nil
}

// contentDigest hashes everything that goes into the image; runtime maps each copied loader or
// library path to its hex SHA-256 (nil for a static executable).
func contentDigest(binHex, name, arch string, entrypoint, cmd, env []string, labels, runtime map[string]string) string {
	// json.Marshal sorts map keys, so the digest is stable. Runtime is omitted when empty so
	// that static executables keep the digests (and the images) they had before dynamic ones
	// were supported.
	b, _ := json.Marshal(struct {
		Version    int               `json:"v"`
		Binary     string            `json:"binary"`
		Name       string            `json:"name"`
		Arch       string            `json:"arch"`
		Entrypoint []string          `json:"entrypoint"`
		Cmd        []string          `json:"cmd"`
		Env        []string          `json:"env"`
		Labels     map[string]string `json:"labels"`
		Runtime    map[string]string `json:"runtime,omitempty"`
	}{1, binHex, name, arch, entrypoint, cmd, env, labels, runtime})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type archiveInput struct {
	tag, name, arch string
	bin             []byte
	runtime         []hostFile
	entrypoint, cmd []string
	env             []string
	labels          map[string]string
}

// epoch is the modification time of every file in the image, so that the same input gives the
// same layer digest.
var epoch = time.Unix(0, 0).UTC()

// layerTar returns the uncompressed single layer; runtime (sorted by path) comes after the
// executable, each file preceded by the directories above it that the layer lacks so far.
func layerTar(name string, bin []byte, runtime []hostFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(path string, mode int64) error {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: path, Mode: mode, ModTime: epoch, Format: tar.FormatPAX,
		})
	}
	for _, d := range []struct {
		path string
		mode int64
	}{
		{"bin/", 0o755},
		{"output/", 0o755},
		{"tmp/", 0o1777},
		{"volume/", 0o755},
	} {
		if err := dir(d.path, d.mode); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: "bin/" + name, Mode: 0o755, Size: int64(len(bin)), ModTime: epoch, Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	haveDir := map[string]bool{"bin": true, "output": true, "tmp": true, "volume": true}
	for _, f := range runtime {
		rel := strings.TrimPrefix(filepath.Clean(f.path), "/")
		var parents []string
		for d := filepath.Dir(rel); d != "." && !haveDir[d]; d = filepath.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			haveDir[parents[i]] = true
			if err := dir(parents[i]+"/", 0o755); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: rel, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// imageConfig is the OCI/Docker image configuration, with only the fields we set.
type imageConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Created      time.Time       `json:"created"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history"`
}

type containerConfig struct {
	Entrypoint []string          `json:"Entrypoint"`
	Cmd        []string          `json:"Cmd,omitempty"`
	Env        []string          `json:"Env"`
	WorkingDir string            `json:"WorkingDir"`
	Labels     map[string]string `json:"Labels"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

type manifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// dockerArchive returns a `docker save` style tar: manifest.json, <config digest>.json and
// <layer digest>/layer.tar.
func dockerArchive(in archiveInput) ([]byte, error) {
	layer, err := layerTar(in.name, in.bin, in.runtime)
	if err != nil {
		return nil, fmt.Errorf("jobimage: build layer: %w", err)
	}
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])

	cfg, err := json.Marshal(imageConfig{
		Architecture: in.arch,
		OS:           "linux",
		Created:      epoch,
		Config: containerConfig{
			Entrypoint: in.entrypoint,
			Cmd:        in.cmd,
			Env:        in.env,
			WorkingDir: "/",
			Labels:     in.labels,
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{"sha256:" + layerHex}},
		History: []history{{Created: epoch, CreatedBy: createdBy(in.name, len(in.runtime))}},
	})
	if err != nil {
		return nil, fmt.Errorf("jobimage: encode image config: %w", err)
	}
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	layerName := layerHex + "/layer.tar"

	manifest, err := json.Marshal([]manifestEntry{{Config: cfgName, RepoTags: []string{in.tag}, Layers: []string{layerName}}})
	if err != nil {
		return nil, fmt.Errorf("jobimage: encode manifest: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch,
		}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: layerHex + "/", Mode: 0o755, ModTime: epoch}); err != nil {
		return nil, fmt.Errorf("jobimage: write archive: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{layerName, layer},
		{cfgName, cfg},
		{"manifest.json", manifest},
	} {
		if err := add(f.name, f.data); err != nil {
			return nil, fmt.Errorf("jobimage: write archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("jobimage: write archive: %w", err)
	}
	return buf.Bytes(), nil
}

// createdBy is the history line; unchanged for a static executable so its image stays the same.
func createdBy(name string, runtimeFiles int) string {
	if runtimeFiles == 0 {
		return "horde jobimage: /bin/" + name
	}
	return fmt.Sprintf("horde jobimage: /bin/%s with its dynamic loader and libraries from the host (%d files)", name, runtimeFiles)
}
