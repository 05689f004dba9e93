package initramfs

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// defaultLibraryDirs are the directories the Debian amd64 dynamic loader
// searches when neither RPATH/RUNPATH nor its cache name a library. The
// guest image has no /etc/ld.so.cache, so these are also the only
// directories the guest's loader searches on its own.
func defaultLibraryDirs() []string {
	return []string{
		"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
		"/lib64", "/usr/lib64", "/lib", "/usr/lib",
	}
}

// LibraryResolver finds the shared libraries of an ELF program the way
// ld.so does: DT_RPATH (when there is no DT_RUNPATH), DT_RUNPATH, the
// directories of /etc/ld.so.conf (standing in for ld.so.cache), then the
// default directories.
type LibraryResolver struct {
	// Root is prefixed to every host path looked at; "" means "/".
	Root string
	// ConfDirs are the directories from ld.so.conf, in file order.
	ConfDirs []string
}

// NewLibraryResolver reads root/etc/ld.so.conf and the files it includes.
// A missing ld.so.conf is not an error: only the default directories are
// searched then.
func NewLibraryResolver(root string) (*LibraryResolver, error) {
	r := &LibraryResolver{Root: root}
	seen := map[string]bool{}
	if err := r.readConf("/etc/ld.so.conf", seen, 0); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *LibraryResolver) host(path string) string {
	if r.Root == "" {
		return path
	}
	return filepath.Join(r.Root, path)
}

func (r *LibraryResolver) readConf(path string, seen map[string]bool, depth int) error {
	if depth > 8 || seen[path] {
		return nil
	}
	seen[path] = true
	f, err := os.Open(r.host(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "include" {
			for _, pattern := range fields[1:] {
				if !filepath.IsAbs(pattern) {
					pattern = filepath.Join(filepath.Dir(path), pattern)
				}
				matches, err := filepath.Glob(r.host(pattern))
				if err != nil {
					return fmt.Errorf("%s: include %s: %w", path, pattern, err)
				}
				sort.Strings(matches)
				for _, m := range matches {
					if r.Root != "" {
						m = "/" + strings.TrimPrefix(m, filepath.Clean(r.Root)+"/")
					}
					if err := r.readConf(m, seen, depth+1); err != nil {
						return err
					}
				}
			}
			continue
		}
		for _, dir := range fields {
			r.ConfDirs = append(r.ConfDirs, strings.TrimRight(dir, "/"))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// ELFClosure is what an ELF program needs beside itself to run.
type ELFClosure struct {
	// Interpreter is the PT_INTERP path ("" for a static program).
	Interpreter string
	// Libraries are the host paths of every shared library needed,
	// transitively, sorted. Each is carried to the same guest path.
	Libraries []string
	// DefaultDirLinks maps a guest path in a default library directory to
	// a library found only through ld.so.conf: the guest has no
	// ld.so.cache, so its loader would not look where the library is.
	DefaultDirLinks map[string]string
}

type elfObject struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	rpath   []string
	runpath []string
}

// errNotELF marks a file that is not an ELF object.
var errNotELF = errors.New("not an ELF file")

func readELF(path string) (*elfObject, error) {
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return nil, errNotELF
		}
		return nil, err
	}
	defer f.Close()
	obj := &elfObject{class: f.Class, machine: f.Machine}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			data := make([]byte, p.Filesz)
			if _, err := p.ReadAt(data, 0); err != nil {
				return nil, fmt.Errorf("read PT_INTERP of %s: %w", path, err)
			}
			obj.interp = strings.TrimRight(string(data), "\x00")
		}
	}
	if f.Section(".dynamic") == nil && !hasDynamicProg(f) {
		return obj, nil
	}
	if obj.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("read DT_NEEDED of %s: %w", path, err)
	}
	origin := filepath.Dir(path)
	for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			return nil, fmt.Errorf("read %v of %s: %w", tag, path, err)
		}
		var dirs []string
		for _, v := range vals {
			for _, dir := range strings.Split(v, ":") {
				if dir != "" {
					dirs = append(dirs, expandOrigin(dir, origin))
				}
			}
		}
		if tag == elf.DT_RPATH {
			obj.rpath = dirs
		} else {
			obj.runpath = dirs
		}
	}
	return obj, nil
}

func hasDynamicProg(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// expandOrigin substitutes the dynamic string tokens ld.so knows in an
// RPATH/RUNPATH entry, with their Debian amd64 values.
func expandOrigin(dir, origin string) string {
	r := strings.NewReplacer(
		"${ORIGIN}", origin, "$ORIGIN", origin,
		"${LIB}", "lib/x86_64-linux-gnu", "$LIB", "lib/x86_64-linux-gnu",
		"${PLATFORM}", "x86_64", "$PLATFORM", "x86_64",
	)
	return filepath.Clean(r.Replace(dir))
}

// Closure returns the interpreter and the shared libraries the ELF file at
// path needs, transitively. A file that is not ELF, or a static program,
// gives an empty closure. A library that cannot be found is an error.
func (r *LibraryResolver) Closure(path string) (*ELFClosure, error) {
	exe, err := readELF(r.host(path))
	if errors.Is(err, errNotELF) {
		return &ELFClosure{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ELF %s: %w", path, err)
	}
	c := &ELFClosure{Interpreter: exe.interp, DefaultDirLinks: map[string]string{}}
	found := map[string]bool{}
	type pending struct {
		obj   *elfObject
		owner string
	}
	queue := []pending{{exe, path}}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, name := range p.obj.needed {
			lib, viaConfOnly, err := r.find(name, p.obj, exe)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", p.owner, name, err)
			}
			if viaConfOnly {
				c.DefaultDirLinks[filepath.Join("/usr/lib/x86_64-linux-gnu", name)] = lib
			}
			if found[lib] {
				continue
			}
			found[lib] = true
			obj, err := readELF(r.host(lib))
			if err != nil {
				return nil, fmt.Errorf("read ELF %s: %w", lib, err)
			}
			queue = append(queue, pending{obj, lib})
		}
	}
	for lib := range found {
		if lib != c.Interpreter {
			c.Libraries = append(c.Libraries, lib)
		}
	}
	sort.Strings(c.Libraries)
	return c, nil
}

// find resolves one DT_NEEDED name for obj, loaded by the program exe. It
// reports whether the library was found only through an ld.so.conf
// directory.
func (r *LibraryResolver) find(name string, obj, exe *elfObject) (string, bool, error) {
	if strings.Contains(name, "/") {
		return name, false, nil
	}
	var dirs []string
	if len(obj.runpath) == 0 {
		dirs = append(dirs, obj.rpath...)
		if obj != exe && len(exe.runpath) == 0 {
			dirs = append(dirs, exe.rpath...)
		}
	}
	dirs = append(dirs, obj.runpath...)
	for _, dir := range dirs {
		if p := filepath.Join(dir, name); r.compatible(p, exe) {
			return p, false, nil
		}
	}
	defaults := defaultLibraryDirs()
	for _, dir := range r.ConfDirs {
		if p := filepath.Join(dir, name); r.compatible(p, exe) {
			isDefault := false
			for _, d := range defaults {
				isDefault = isDefault || d == dir
			}
			return p, !isDefault, nil
		}
	}
	for _, dir := range defaults {
		if p := filepath.Join(dir, name); r.compatible(p, exe) {
			return p, false, nil
		}
	}
	return "", false, fmt.Errorf("not found in RPATH/RUNPATH, ld.so.conf or %s", strings.Join(defaults, ":"))
}

// compatible reports whether path is an ELF object of the program's class
// and machine (so a 32-bit library of the same name is passed over, as ld.so
// does).
func (r *LibraryResolver) compatible(path string, exe *elfObject) bool {
	f, err := elf.Open(r.host(path))
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Class == exe.class && f.Machine == exe.machine
}
