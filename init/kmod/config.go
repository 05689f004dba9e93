package kmod

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"vigil/init/cmdline"
)

// modprobeConfig is what /etc/modprobe.d and friends say.
type modprobeConfig struct {
	options   map[string][]string
	blacklist map[string]bool
	aliases   []aliasEntry
	softdep   map[string]softdepEntry
}

// parseModprobeConf reads one modprobe.d file into cfg. Understood:
// "options MODULE ARGS...", "blacklist MODULE", "alias PATTERN MODULE" and
// "softdep MODULE pre: ... post: ...". "install" and "remove" commands are
// not run (Vigil runs no shell commands to load a module); other lines are
// ignored. A trailing '\' continues a line.
func parseModprobeConf(r io.Reader, cfg *modprobeConfig) error {
	var pending strings.Builder
	return scanLines(r, func(line string) {
		if strings.HasSuffix(line, "\\") {
			pending.WriteString(strings.TrimSuffix(line, "\\"))
			pending.WriteByte(' ')
			return
		}
		pending.WriteString(line)
		full := pending.String()
		pending.Reset()
		if i := strings.IndexByte(full, '#'); i >= 0 {
			full = full[:i]
		}
		f := strings.Fields(full)
		if len(f) < 2 {
			return
		}
		name := ModuleName(f[1])
		switch f[0] {
		case "options":
			if len(f) > 2 {
				cfg.options[name] = append(cfg.options[name], f[2:]...)
			}
		case "blacklist":
			cfg.blacklist[name] = true
		case "alias":
			if len(f) >= 3 {
				cfg.aliases = append(cfg.aliases, aliasEntry{Pattern: f[1], Module: ModuleName(f[2])})
			}
		case "softdep":
			s := parseSoftdep(f[2:])
			prev := cfg.softdep[name]
			prev.Pre = append(prev.Pre, s.Pre...)
			prev.Post = append(prev.Post, s.Post...)
			cfg.softdep[name] = prev
		}
	})
}

func newModprobeConfig() *modprobeConfig {
	return &modprobeConfig{
		options:   make(map[string][]string),
		blacklist: make(map[string]bool),
		softdep:   make(map[string]softdepEntry),
	}
}

// modprobeDirs lists the modprobe.d directories under root, highest
// precedence first, as kmod searches them.
func modprobeDirs(root string) []string {
	return []string{
		filepath.Join(root, "etc/modprobe.d"),
		filepath.Join(root, "run/modprobe.d"),
		filepath.Join(root, "usr/local/lib/modprobe.d"),
		filepath.Join(root, "usr/lib/modprobe.d"),
		filepath.Join(root, "lib/modprobe.d"),
	}
}

// ModulesLoadDirs lists the modules-load.d directories under root (""
// means "/"), highest precedence first, as systemd-modules-load searches them.
func ModulesLoadDirs(root string) []string {
	if root == "" {
		root = "/"
	}
	return []string{
		filepath.Join(root, "etc/modules-load.d"),
		filepath.Join(root, "run/modules-load.d"),
		filepath.Join(root, "usr/local/lib/modules-load.d"),
		filepath.Join(root, "usr/lib/modules-load.d"),
		filepath.Join(root, "lib/modules-load.d"),
	}
}

// confFiles returns the *.conf files of dirs in the order systemd reads
// them: sorted by file name, a name in an earlier directory hiding the same
// name in later ones. A file that is a symlink to /dev/null masks the name
// and is left out. Missing directories are not an error.
func confFiles(dirs []string) ([]string, error) {
	chosen := make(map[string]string)
	var errs []error
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("read directory %s: %w", dir, err))
			}
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".conf") || e.IsDir() {
				continue
			}
			if _, seen := chosen[name]; !seen {
				chosen[name] = filepath.Join(dir, name)
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for name := range chosen {
		names = append(names, name)
	}
	sort.Strings(names)
	files := make([]string, 0, len(names))
	for _, name := range names {
		p := chosen[name]
		if target, err := os.Readlink(p); err == nil && target == "/dev/null" {
			continue
		}
		files = append(files, p)
	}
	return files, errors.Join(errs...)
}

// parseModulesLoadConf reads one modules-load.d file: a module name per
// line; empty lines and lines starting with '#' or ';' are comments.
func parseModulesLoadConf(r io.Reader) ([]string, error) {
	var out []string
	err := scanLines(r, func(line string) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			return
		}
		out = append(out, line)
	})
	return out, err
}

// ReadModulesLoadD returns the module names listed in the *.conf files of
// dirs (ModulesLoadDirs("/") when none are given), with systemd's
// precedence: files sorted by name, an earlier directory's file hiding a
// later one of the same name, /dev/null symlinks masking. Unreadable files
// are reported in the error, and the names from every readable file are
// still returned.
func ReadModulesLoadD(dirs ...string) ([]string, error) {
	if len(dirs) == 0 {
		dirs = ModulesLoadDirs("/")
	}
	files, err := confFiles(dirs)
	errs := []error{err}
	var names []string
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("open %s: %w", file, err))
			continue
		}
		got, err := parseModulesLoadConf(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", file, err))
		}
		names = append(names, got...)
	}
	return names, errors.Join(errs...)
}

// FromCmdline returns the modules named by modules-load= and
// rd.modules-load= on a kernel command line.
func FromCmdline(line string) []string {
	return cmdline.Parse(line).ModulesLoad()
}

// cmdlineOptions returns the "module.param=value" parameters of a kernel
// command line for one module, as modprobe applies them.
func cmdlineOptions(line, module string) []string {
	var out []string
	for _, p := range cmdline.Parse(line).Params {
		if p.AfterSeparator {
			continue
		}
		mod, param, ok := strings.Cut(p.Key, ".")
		// No module has a parameter whose name holds white space: passed
		// on, it would split into other parameters. A NUL would end the
		// C string finit_module gets, and a bare "--" the kernel's
		// parameter parser: with them every later option.
		if !ok || param == "" || param == "--" || strings.ContainsAny(param, kernelSpace+"\x00") || strings.IndexByte(p.Value, 0) >= 0 || ModuleName(mod) != module {
			continue
		}
		if p.HasValue {
			out = append(out, param+"="+quoteOption(p.Value))
		} else {
			out = append(out, param)
		}
	}
	return out
}

// kernelSpace is what the kernel's parameter parser splits at (isspace).
const kernelSpace = " \t\n\v\f\r"

// quoteOption re-quotes a value that contains white space, so the kernel's
// parameter parser sees one value.
func quoteOption(v string) string {
	if strings.ContainsAny(v, kernelSpace) {
		return `"` + v + `"`
	}
	return v
}
