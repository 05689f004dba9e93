package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules returns the kernel modules a QEMU guest of the Debian kernel
// needs for virtio devices, 9p shares, ext4 disks, autofs and loop mounts.
// Their dependencies come from modules.dep.
//
// crc32c_generic is named because ext4 and jbd2 only name it as a soft
// dependency ("softdep ext4 pre: crypto-crc32c" in modules.softdep), which
// modules.dep leaves out: without it mounting a metadata_csum file system
// (mkfs.ext4's default) fails with "Cannot load crc32c driver". The generic
// one, not crc32c-intel: QEMU's TCG CPU model has no SSE4.2.
func DefaultModules() []string {
	return []string{
		"virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng",
		"9p", "9pnet_virtio", "crc32c_generic", "ext4", "autofs4", "loop",
	}
}

// ModuleDep is one line of modules.dep: a module's path relative to the
// modules directory and the paths of the modules it needs, in the order
// modprobe lists them (a module's dependencies before itself when read
// right to left).
type ModuleDep struct {
	Path string
	Deps []string
}

// ModuleName turns a module path ("kernel/drivers/char/hw_random/virtio-rng.ko.xz")
// into the name modprobe uses ("virtio_rng"): the base name without the .ko
// suffix and any compression suffix, dashes folded to underscores.
func ModuleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// ParseModulesDep reads modules.dep ("path: dep dep ..." per line) into a
// map keyed by module name. Blank lines and lines starting with # are
// skipped; a line without a colon is an error.
func ParseModulesDep(r io.Reader) (map[string]ModuleDep, error) {
	deps := map[string]ModuleDep{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		path, rest, ok := strings.Cut(line, ":")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			return nil, fmt.Errorf("modules.dep line %d: %q has no \"path:\"", lineNo, line)
		}
		deps[ModuleName(path)] = ModuleDep{Path: path, Deps: strings.Fields(rest)}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep line %d: %w", lineNo+1, err)
	}
	return deps, nil
}

// ModuleSet is the closure of some kernel modules over modules.dep.
type ModuleSet struct {
	// Dir is the host modules directory, /lib/modules/<release>.
	Dir string
	// Release is the kernel release, the base name of Dir.
	Release string
	// Requested are the names asked for, in the order given.
	Requested []string
	// Paths are the module files to carry, relative to Dir, sorted.
	Paths []string
	// Compressed lists carried modules stored compressed (.ko.xz, .ko.zst,
	// .ko.gz): they are carried as they are, and the loader must
	// decompress them before finit_module (or pass
	// MODULE_INIT_COMPRESSED_FILE).
	Compressed []string
	// Dep is the modules.dep restricted to the carried modules.
	Dep []ModuleDep
}

// ResolveModules reads dir/modules.dep and returns the named modules with
// everything they depend on. A missing directory or an unknown module name
// is an error that names the kernel release.
func ResolveModules(dir string, names []string) (*ModuleSet, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("kernel modules directory %s missing (is the kernel's package installed?): %v", dir, err)
	}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules of %s: %w", filepath.Base(dir), err)
	}
	defer f.Close()
	all, err := ParseModulesDep(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	builtin := readBuiltinNames(filepath.Join(dir, "modules.builtin"))
	set := &ModuleSet{Dir: dir, Release: filepath.Base(dir)}
	byPath := map[string]ModuleDep{}
	for _, d := range all {
		byPath[d.Path] = d
	}
	carried := map[string]bool{}
	var visit func(path string) error
	visit = func(path string) error {
		if carried[path] {
			return nil
		}
		d, ok := byPath[path]
		if !ok {
			return fmt.Errorf("modules.dep of %s names %s as a dependency but has no line for it", set.Release, path)
		}
		carried[path] = true
		for _, dep := range d.Deps {
			if err := visit(dep); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range names {
		key := ModuleName(name)
		d, ok := all[key]
		if !ok {
			if builtin[key] {
				// Built into the kernel: nothing to carry; the loader
				// finds it in modules.builtin.
				set.Requested = append(set.Requested, key)
				continue
			}
			return nil, fmt.Errorf("kernel module %q not found in %s/modules.dep", name, dir)
		}
		set.Requested = append(set.Requested, key)
		if err := visit(d.Path); err != nil {
			return nil, err
		}
	}
	for path := range carried {
		set.Paths = append(set.Paths, path)
		if !strings.HasSuffix(path, ".ko") {
			set.Compressed = append(set.Compressed, path)
		}
		set.Dep = append(set.Dep, byPath[path])
	}
	sort.Strings(set.Paths)
	sort.Strings(set.Compressed)
	sort.Slice(set.Dep, func(i, j int) bool { return set.Dep[i].Path < set.Dep[j].Path })
	return set, nil
}

// readBuiltinNames returns the names in modules.builtin; a missing file
// yields an empty set (older kernels do not write it).
func readBuiltinNames(path string) map[string]bool {
	names := map[string]bool{}
	data, err := os.ReadFile(path)
	if err != nil {
		return names
	}
	for _, line := range strings.Fields(string(data)) {
		names[ModuleName(line)] = true
	}
	return names
}

// FormatModulesDep writes deps in modules.dep syntax.
func FormatModulesDep(deps []ModuleDep) []byte {
	var b bytes.Buffer
	for _, d := range deps {
		b.WriteString(d.Path)
		b.WriteByte(':')
		for _, dep := range d.Deps {
			b.WriteByte(' ')
			b.WriteString(dep)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// carriedAliases reads a modules.alias and keeps the aliases of the modules
// in set.
func carriedAliases(path string, set *ModuleSet) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	carried := map[string]bool{}
	for _, p := range set.Paths {
		carried[ModuleName(p)] = true
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" && carried[f[2]] {
			b.WriteString(line + "\n")
		}
	}
	return []byte(b.String()), nil
}
