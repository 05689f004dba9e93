// Package kmod owns loading kernel modules the way modprobe does, without
// kmod: it reads depmod's text indexes (modules.dep, modules.alias,
// modules.builtin, modules.softdep) and modprobe.d configuration, orders a
// module's dependencies, and inserts each with finit_module(2).
//
// What it does as modprobe does: dependencies load deepest first; "pre:"
// soft dependencies load before their module (best effort); "options" from
// modprobe.d and "module.param=" from the kernel command line are passed
// to the module; "blacklist" hides a module from alias lookups only (an
// explicit name still loads, as systemd-modules-load does); EEXIST from the
// kernel counts as success; built-in modules count as loaded.
//
// What it does not do: "install"/"remove" commands are ignored (PID 1 runs
// no shell to load a module). Modules compressed with xz or zstd are handed
// to the kernel with MODULE_INIT_COMPRESSED_FILE (kernel 6.2+ built with
// CONFIG_MODULE_DECOMPRESS); Go's standard library has no decoder for
// them, so when the kernel refuses, the error says so (ErrCompressedUnsupported).
// gzip modules are decompressed in memory and passed to init_module(2).
package kmod

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotFound is returned (wrapped) when a name is neither a module nor an
// alias of one. Uevent-driven loading sees it for most MODALIAS values.
var ErrNotFound = errors.New("no such module")

// ErrCompressedUnsupported is returned (wrapped) for an xz or zstd module
// the running kernel cannot decompress itself.
var ErrCompressedUnsupported = errors.New("compressed module not supported")

// Loader loads modules for one kernel release. The zero value loads for the
// running kernel from "/". A Loader reads the indexes once, on first use,
// and is safe for concurrent use.
type Loader struct {
	// Root is prefixed to /lib/modules and the modprobe.d directories
	// ("" means "/").
	Root string
	// KernelRelease selects /lib/modules/KernelRelease ("" means uname -r).
	KernelRelease string
	// KernelCmdline supplies "module.param=value" options, as the kernel
	// command line does for modprobe. When empty and Root is "" (the
	// running system), /proc/cmdline is read.
	KernelCmdline string

	mu      sync.Mutex
	index   *depIndex
	config  *modprobeConfig
	moddir  string
	cmdline string
	loadErr error
}

// Step is one module insertion of a plan.
type Step struct {
	// Name is the kernel's module name (underscores).
	Name string
	// Path is the module file's absolute path (under Root).
	Path string
	// Options is the parameter string passed to the kernel.
	Options string
	// Builtin is true for a module compiled into the kernel: nothing to insert.
	Builtin bool
	// Soft is true for a soft dependency, whose failure does not fail the load.
	Soft bool
}

func (l *Loader) root() string {
	if l.Root == "" {
		return "/"
	}
	return l.Root
}

// ModulesDir is the directory the indexes are read from.
func (l *Loader) ModulesDir() (string, error) {
	release := l.KernelRelease
	if release == "" {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			return "", fmt.Errorf("uname: %w", err)
		}
		release = unix.ByteSliceToString(uts.Release[:])
	}
	return filepath.Join(l.root(), "lib/modules", release), nil
}

// load reads the indexes and configuration once.
func (l *Loader) load() (*depIndex, *modprobeConfig, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.index != nil || l.loadErr != nil {
		return l.index, l.config, l.loadErr
	}
	dir, err := l.ModulesDir()
	if err != nil {
		l.loadErr = err
		return nil, nil, err
	}
	idx, err := loadDepIndex(dir)
	if err != nil {
		l.loadErr = fmt.Errorf("kernel module index: %w", err)
		return nil, nil, l.loadErr
	}
	cfg := newModprobeConfig()
	files, _ := confFiles(modprobeDirs(l.root()))
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			continue // an unreadable modprobe.d file must not stop module loading
		}
		_ = parseModprobeConf(f, cfg)
		f.Close()
	}
	l.cmdline = l.KernelCmdline
	if l.cmdline == "" && l.Root == "" {
		if data, err := os.ReadFile("/proc/cmdline"); err == nil {
			l.cmdline = string(data)
		}
	}
	l.index, l.config, l.moddir = idx, cfg, dir
	return idx, cfg, nil
}

// Resolve maps a name to the module names it stands for: a modprobe.d
// alias, a module name (with '-' or '_'), a built-in module, or a
// modules.alias pattern such as the MODALIAS of a uevent. Blacklisted
// modules are dropped from alias matches. The error wraps ErrNotFound when
// nothing matches.
func (l *Loader) Resolve(name string) ([]string, error) {
	idx, cfg, err := l.load()
	if err != nil {
		return nil, err
	}
	return resolve(idx, cfg, name)
}

func resolve(idx *depIndex, cfg *modprobeConfig, name string) ([]string, error) {
	if name == "" {
		return nil, fmt.Errorf("resolve empty module name: %w", ErrNotFound)
	}
	var out []string
	seen := make(map[string]bool)
	add := func(mod string) {
		if !seen[mod] {
			seen[mod] = true
			out = append(out, mod)
		}
	}
	for _, a := range cfg.aliases {
		if fnmatch(a.Pattern, name) {
			add(a.Module)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	modName := canonicalName(idx, name)
	if _, ok := idx.byName[modName]; ok || idx.builtin[modName] {
		return []string{modName}, nil
	}
	for _, a := range idx.aliases {
		if !cfg.blacklist[a.Module] && fnmatch(a.Pattern, name) {
			add(a.Module)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve %q: %w", name, ErrNotFound)
	}
	return out, nil
}

// Plan returns the insertions Load would make for one module name (not an
// alias), in order: soft "pre:" dependencies, hard dependencies deepest
// first, then the module itself.
func (l *Loader) Plan(module string) ([]Step, error) {
	idx, cfg, err := l.load()
	if err != nil {
		return nil, err
	}
	name := canonicalName(idx, module)
	if idx.builtin[name] {
		return []Step{{Name: name, Builtin: true}}, nil
	}
	if _, ok := idx.byName[name]; !ok {
		return nil, fmt.Errorf("module %s: not in %s/modules.dep: %w", name, l.moddir, ErrNotFound)
	}
	var steps []Step
	visited := make(map[string]bool)
	var visit func(name string, soft bool, depth int)
	visit = func(name string, soft bool, depth int) {
		if visited[name] || depth > 64 {
			return
		}
		visited[name] = true
		if idx.builtin[name] {
			return
		}
		entry, ok := idx.byName[name]
		if !ok {
			return
		}
		for _, pre := range softdeps(idx, cfg, name).Pre {
			mods, err := resolve(idx, cfg, pre)
			if err != nil {
				continue
			}
			for _, m := range mods {
				visit(m, true, depth+1)
			}
		}
		// depmod lists the deepest dependency last: walk backwards so
		// each module's own dependencies come before it.
		for i := len(entry.Deps) - 1; i >= 0; i-- {
			visit(ModuleName(entry.Deps[i]), soft, depth+1)
		}
		steps = append(steps, Step{
			Name:    name,
			Path:    filepath.Join(l.moddir, entry.Path),
			Options: l.options(cfg, name),
			Soft:    soft,
		})
	}
	visit(name, false, 0)
	return steps, nil
}

// canonicalName returns name itself when the index knows it, else its
// normalised form (ModuleName), so odd names from modules.dep still resolve.
func canonicalName(idx *depIndex, name string) string {
	if _, ok := idx.byName[name]; ok || idx.builtin[name] {
		return name
	}
	return ModuleName(name)
}

func softdeps(idx *depIndex, cfg *modprobeConfig, name string) softdepEntry {
	if s, ok := cfg.softdep[name]; ok {
		return s // configuration replaces what the module declares
	}
	return idx.softdep[name]
}

func (l *Loader) options(cfg *modprobeConfig, name string) string {
	opts := append([]string(nil), cfg.options[name]...)
	if l.cmdline != "" {
		opts = append(opts, cmdlineOptions(l.cmdline, name)...)
	}
	return strings.Join(opts, " ")
}

// Load loads a module or every module an alias stands for, with their
// dependencies. A module already loaded or built in is success.
func (l *Loader) Load(name string) error {
	mods, err := l.Resolve(name)
	if err != nil {
		return err
	}
	var errs []error
	for _, mod := range mods {
		steps, err := l.Plan(mod)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, step := range steps {
			if err := insert(step); err != nil && !step.Soft {
				errs = append(errs, fmt.Errorf("load %s: %w", name, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// LoadAll loads each name; the result holds one error per name that failed.
func (l *Loader) LoadAll(names []string) []error {
	var errs []error
	for _, name := range names {
		if err := l.Load(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Loaded reports whether the running kernel has a module of this name live
// (or coming) in /sys/module.
func Loaded(name string) bool {
	state, err := os.ReadFile(filepath.Join("/sys/module", ModuleName(name), "initstate"))
	if err != nil {
		return false
	}
	s := strings.TrimSpace(string(state))
	return s == "live" || s == "coming"
}

// insert puts one module into the running kernel.
func insert(step Step) error {
	if step.Builtin || Loaded(step.Name) {
		return nil
	}
	f, err := os.Open(step.Path)
	if err != nil {
		return fmt.Errorf("insert %s: %w", step.Name, err)
	}
	defer f.Close()
	switch {
	case strings.HasSuffix(step.Path, ".gz"):
		image, err := gunzip(f)
		if err != nil {
			return fmt.Errorf("insert %s: decompress %s: %w", step.Name, step.Path, err)
		}
		err = unix.InitModule(image, step.Options)
		return insertResult(step, "init_module", err)
	case strings.HasSuffix(step.Path, ".xz"), strings.HasSuffix(step.Path, ".zst"):
		err := unix.FinitModule(int(f.Fd()), step.Options, unix.MODULE_INIT_COMPRESSED_FILE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("insert %s from %s: the kernel cannot decompress it (%v) and Vigil has no %s decoder: %w",
				step.Name, step.Path, err, filepath.Ext(step.Path), ErrCompressedUnsupported)
		}
		return insertResult(step, "finit_module", err)
	default:
		err := unix.FinitModule(int(f.Fd()), step.Options, 0)
		return insertResult(step, "finit_module", err)
	}
}

func insertResult(step Step, call string, err error) error {
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	hint := ""
	switch {
	case errors.Is(err, unix.ENOSYS):
		hint = " (kernel without module support)"
	case errors.Is(err, unix.ENOEXEC):
		hint = " (not a module for this kernel)"
	case errors.Is(err, unix.ENOENT):
		hint = " (unknown symbol: a dependency is missing)"
	case errors.Is(err, unix.EPERM):
		hint = " (module loading disabled or not permitted)"
	}
	if step.Options != "" {
		return fmt.Errorf("%s %s (options %q)%s: %w", call, step.Path, step.Options, hint, err)
	}
	return fmt.Errorf("%s %s%s: %w", call, step.Path, hint, err)
}

func gunzip(r io.Reader) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, zr); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
