package jobimage

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A dynamically linked executable cannot run in an image that holds nothing else, so Build
// copies in what the host's dynamic loader would load for it: the loader named by PT_INTERP and
// every shared object reached through DT_NEEDED, each at the path the host resolves it to, with
// the content of the file that path finally points at. The resolution is done here in Go, from
// the ELF headers and ld.so.conf, rather than by running the loader (`ld.so --list` runs the
// executable's own initialisers when the loader cannot tell it from a library, and depends on the
// caller's environment).

// ldSoConf is the host's loader configuration: the directories ldconfig indexes into
// ld.so.cache, which the loader consults before its built-in directories.
const ldSoConf = "/etc/ld.so.conf"

// hostFile is a file copied from the host into the image.
type hostFile struct {
	// path is absolute: where the loader looks for the file, on the host and in the image.
	path string
	data []byte
	mode int64
}

// runtimeFiles is what a dynamically linked executable needs in its image.
type runtimeFiles struct {
	// files are the loader and the shared objects, sorted by path.
	files []hostFile
	// libDirs are the directories holding the shared objects, in the order they were first
	// used. The image has no ld.so.cache, and which directories a loader searches without one
	// is compiled into it and differs between distributions (Debian: /lib/<triple>, /usr/lib/<triple>,
	// /lib, /usr/lib; Fedora: /lib64, /usr/lib64), so the image names them in LD_LIBRARY_PATH.
	libDirs []string
}

// digests returns the hex SHA-256 of every file by path, for the content digest: a changed
// host library must change the image.
func (r runtimeFiles) digests() map[string]string {
	if len(r.files) == 0 {
		return nil
	}
	out := make(map[string]string, len(r.files))
	for _, f := range r.files {
		sum := sha256.Sum256(f.data)
		out[f.path] = hex.EncodeToString(sum[:])
	}
	return out
}

// libResolver finds shared objects the way the host's glibc loader does, for one ELF machine
// and class (the loader skips files built for another, e.g. 32-bit libraries in /usr/lib).
type libResolver struct {
	machine elf.Machine
	class   elf.Class
	// confDirs are the ld.so.conf directories, standing in for ld.so.cache; searched before
	// defaultDirs.
	confDirs []string
	// defaultDirs are the directories a loader searches on its own.
	defaultDirs []string
}

// newLibResolver returns a resolver for executables like exe, reading the host's ld.so.conf.
func newLibResolver(exe *elf.File) (*libResolver, error) {
	conf, err := readLdSoConf(ldSoConf, 0)
	if err != nil {
		return nil, err
	}
	return &libResolver{machine: exe.Machine, class: exe.Class, confDirs: conf, defaultDirs: defaultLibDirs(exe.Machine, exe.Class)}, nil
}

// defaultLibDirs are the built-in search directories of the common glibc builds for machine:
// the Debian multiarch ones, then the lib64 (Fedora, SUSE) and plain lib ones. Listing more
// than one loader searches is harmless: a file of the wrong class or machine is skipped.
func defaultLibDirs(machine elf.Machine, class elf.Class) []string {
	triples := map[elf.Machine]string{
		elf.EM_X86_64: "x86_64-linux-gnu", elf.EM_AARCH64: "aarch64-linux-gnu", elf.EM_386: "i386-linux-gnu",
		elf.EM_ARM: "arm-linux-gnueabihf", elf.EM_PPC64: "powerpc64le-linux-gnu", elf.EM_S390: "s390x-linux-gnu",
		elf.EM_RISCV: "riscv64-linux-gnu",
	}
	var dirs []string
	if t, ok := triples[machine]; ok {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// readLdSoConf returns the directories listed in the ld.so.conf file path, following its
// `include` lines; a missing file lists none (musl and minimal hosts have none).
func readLdSoConf(path string, depth int) ([]string, error) {
	if depth > 8 {
		return nil, fmt.Errorf("jobimage: %s: include nesting too deep", path)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobimage: read loader configuration: %w", err)
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "include":
			for _, pattern := range fields[1:] {
				if !filepath.IsAbs(pattern) {
					pattern = filepath.Join(filepath.Dir(path), pattern)
				}
				// Glob sorts, as ldconfig does.
				matches, err := filepath.Glob(pattern)
				if err != nil {
					return nil, fmt.Errorf("jobimage: %s: include %s: %w", path, pattern, err)
				}
				for _, m := range matches {
					sub, err := readLdSoConf(m, depth+1)
					if err != nil {
						return nil, err
					}
					dirs = append(dirs, sub...)
				}
			}
		case fields[0] == "hwcap":
			// Obsolete; glibc ignores it too.
		default:
			// ldconfig accepts comma- and whitespace-separated lists, and "dir=type".
			for _, d := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
				d, _, _ = strings.Cut(d, "=")
				if filepath.IsAbs(d) {
					dirs = append(dirs, filepath.Clean(d))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("jobimage: read %s: %w", path, err)
	}
	return dirs, nil
}

// sharedObject is one ELF file taking part in the resolution.
type sharedObject struct {
	path    string // where it was found
	needed  []string
	rpath   []string // DT_RPATH, tokens expanded
	runpath []string // DT_RUNPATH, tokens expanded
}

func openSharedObject(path string) (*sharedObject, *elf.File, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	o := &sharedObject{path: path}
	if o.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: read DT_NEEDED: %w", path, err)
	}
	// The main executable's $ORIGIN is its host directory; in the image it is /bin, but every
	// library found through it is also listed in LD_LIBRARY_PATH there.
	origin := filepath.Dir(path)
	for _, t := range []struct {
		tag elf.DynTag
		dst *[]string
	}{{elf.DT_RPATH, &o.rpath}, {elf.DT_RUNPATH, &o.runpath}} {
		vals, err := f.DynString(t.tag)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: read %s: %w", path, t.tag, err)
		}
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				d = strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin).Replace(d)
				// $LIB and $PLATFORM depend on the loader build; such entries are skipped
				// and the library is looked for in the other directories.
				if d != "" && !strings.Contains(d, "$") && filepath.IsAbs(d) {
					*t.dst = append(*t.dst, filepath.Clean(d))
				}
			}
		}
	}
	return o, f, nil
}

// compatible reports whether path is an ELF shared object the loader would accept for r.
func (r *libResolver) compatible(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Machine == r.machine && f.Class == r.class
}

// resolve returns the loader and shared objects that the executable at exePath needs: interp
// is its PT_INTERP. It fails naming the first library it cannot find.
func (r *libResolver) resolve(exePath, interp string) (runtimeFiles, error) {
	var rt runtimeFiles
	if !r.compatible(interp) {
		return rt, fmt.Errorf("jobimage: %s needs the dynamic loader %s, which is not an ELF file for %s on this host; build it with CGO_ENABLED=0", exePath, interp, r.machine)
	}
	paths := []string{interp}
	// The loader is a shared object itself (libc.so.6 lists it in DT_NEEDED); it satisfies
	// that entry by its soname without a search.
	loaded := map[string]bool{}
	if lf, err := elf.Open(interp); err == nil {
		if names, err := lf.DynString(elf.DT_SONAME); err == nil {
			for _, n := range names {
				loaded[n] = true
			}
		}
		lf.Close()
	}
	loaded[filepath.Base(interp)] = true

	exe, f, err := openSharedObject(exePath)
	if err != nil {
		return rt, fmt.Errorf("jobimage: %w", err)
	}
	f.Close()
	// Breadth first, as the loader does: the order decides which of two same-named files wins.
	queue := []*sharedObject{exe}
	for len(queue) > 0 {
		obj := queue[0]
		queue = queue[1:]
		for _, name := range obj.needed {
			if loaded[name] {
				continue
			}
			loaded[name] = true
			found, searched := r.find(name, obj, exe)
			if found == "" {
				via := ""
				if obj != exe {
					via = fmt.Sprintf(" (through %s)", obj.path)
				}
				return rt, fmt.Errorf("jobimage: %s needs the shared library %s%s, which is not in %s on this host; install it or build the executable with CGO_ENABLED=0",
					exePath, name, via, strings.Join(searched, ", "))
			}
			lib, lf, err := openSharedObject(found)
			if err != nil {
				return rt, fmt.Errorf("jobimage: %w", err)
			}
			lf.Close()
			paths = append(paths, found)
			if d := filepath.Dir(found); !slices.Contains(rt.libDirs, d) {
				rt.libDirs = append(rt.libDirs, d)
			}
			queue = append(queue, lib)
		}
	}

	for _, p := range paths {
		// ReadFile and Stat follow symlinks: the image gets a plain file at the path the loader
		// opens, holding what the link finally points at.
		data, err := os.ReadFile(p)
		if err != nil {
			return rt, fmt.Errorf("jobimage: read %s: %w", p, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return rt, fmt.Errorf("jobimage: %w", err)
		}
		rt.files = append(rt.files, hostFile{path: p, data: data, mode: int64(st.Mode().Perm())})
	}
	slices.SortFunc(rt.files, func(a, b hostFile) int { return strings.Compare(a.path, b.path) })
	return rt, nil
}

// find looks for the DT_NEEDED entry name of obj in glibc's order: a name with a slash as is;
// else obj's DT_RPATH and then the executable's (only when obj has no DT_RUNPATH), obj's
// DT_RUNPATH, the ld.so.conf directories and the default ones. LD_LIBRARY_PATH is left out on
// purpose: the image does not run with the caller's environment. It returns the path found
// ("" if none) and the directories searched.
func (r *libResolver) find(name string, obj, exe *sharedObject) (string, []string) {
	if strings.Contains(name, "/") {
		if r.compatible(name) {
			return name, nil
		}
		return "", []string{name}
	}
	var dirs []string
	if len(obj.runpath) == 0 {
		dirs = append(dirs, obj.rpath...)
		if obj != exe {
			dirs = append(dirs, exe.rpath...)
		}
	}
	dirs = append(dirs, obj.runpath...)
	dirs = append(dirs, r.confDirs...)
	dirs = append(dirs, r.defaultDirs...)
	var searched []string
	for _, d := range dirs {
		if slices.Contains(searched, d) {
			continue
		}
		searched = append(searched, d)
		if p := filepath.Join(d, name); r.compatible(p) {
			return p, searched
		}
	}
	return "", searched
}
