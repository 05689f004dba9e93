package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// This file holds the unit-file verbs systemctl has beyond enable,
// disable and mask: link, preset, preset-all, revert and add-wants /
// add-requires.

// Link makes unit files that live outside the unit directories known:
// for each absolute path, a symlink named after the file in the install
// directory (systemctl link). A file already in a unit directory needs no
// link. A different file or link of that name is replaced only with force.
func (m *Manager) Link(paths []string, runtime, force bool) (api.Changes, error) {
	var res api.Changes
	dir, err := m.installDir(runtime)
	if err != nil {
		return res, fmt.Errorf("link: %w", err)
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return res, fmt.Errorf("link %s: an absolute path to a unit file is expected", p)
		}
		p = filepath.Clean(p)
		name := filepath.Base(p)
		n, err := unitfile.ParseName(name)
		if err != nil {
			return res, fmt.Errorf("link %s: %w", p, err)
		}
		if n.IsInstance() {
			return res, fmt.Errorf("link %s: an instance cannot be linked; link its template", p)
		}
		st, err := os.Stat(p)
		if err != nil {
			return res, fmt.Errorf("link: %w", err)
		}
		if !st.Mode().IsRegular() {
			return res, fmt.Errorf("link %s: not a regular file", p)
		}
		if m.inUnitDirectory(p) {
			continue
		}
		link := filepath.Join(dir, name)
		if cur, err := os.Readlink(link); err == nil {
			if cur == p {
				continue
			}
			if !force {
				return res, fmt.Errorf("link %s: %s already exists and points to %s (use --force)", p, link, cur)
			}
		} else if _, err := os.Lstat(link); err == nil && !force {
			return res, fmt.Errorf("link %s: %s already exists (use --force)", p, link)
		}
		if _, err := os.Lstat(link); err == nil {
			if err := os.Remove(link); err != nil {
				return res, fmt.Errorf("link %s: %w", p, err)
			}
			res.Changes = append(res.Changes, api.Change{Type: "unlink", Path: link})
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, fmt.Errorf("link %s: %w", p, err)
		}
		if err := os.Symlink(p, link); err != nil {
			return res, fmt.Errorf("link %s: %w", p, err)
		}
		res.Changes = append(res.Changes, api.Change{Type: "symlink", Path: link, Destination: p})
	}
	m.installChanged()
	return res, nil
}

// inUnitDirectory reports whether p is directly in one of the unit
// directories.
func (m *Manager) inUnitDirectory(p string) bool {
	for _, d := range m.searchPaths() {
		if filepath.Dir(p) == filepath.Clean(d) {
			return true
		}
	}
	return false
}

// Preset applies the preset policy to the named units. Vigil ships no
// preset files, and systemd.preset(5) says that without any, presets
// enable every unit that can be installed: mode "full" and "enable-only"
// enable, "disable-only" leaves the units alone. carries reports whether
// any unit had [install] settings.
func (m *Manager) Preset(names []string, mode string) (carries bool, res api.Changes, err error) {
	if err := checkPresetMode(mode); err != nil {
		return false, res, err
	}
	for _, name := range names {
		u, err := m.LoadUnit(name)
		if err != nil {
			return carries, res, err
		}
		if u.LoadState == LoadNotFound {
			return carries, res, &NotFoundError{Name: name}
		}
		if u.cfg != nil && !u.cfg.Install.Empty() {
			carries = true
		}
	}
	if mode == "disable-only" {
		return carries, res, nil
	}
	res, err = m.EnableDisable(true, names)
	return carries, res, err
}

// PresetAll applies the preset policy (see Preset) to every unit file
// that is disabled.
func (m *Manager) PresetAll(mode string) (api.Changes, error) {
	var res api.Changes
	if err := checkPresetMode(mode); err != nil {
		return res, err
	}
	if mode == "disable-only" {
		return res, nil
	}
	var names []string
	seen := map[string]bool{}
	for _, dir := range m.opts.UnitPaths {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			name := e.Name()
			if seen[name] || e.IsDir() {
				continue
			}
			seen[name] = true
			if n, err := unitfile.ParseName(name); err != nil || n.IsTemplate {
				continue
			}
			if st, err := unitfile.IsEnabled(m.opts.UnitPaths, name, m.opts.Specifiers); err == nil && st == unitfile.EnabledStateDisabled {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return res, nil
	}
	return m.EnableDisable(true, names)
}

func checkPresetMode(mode string) error {
	switch mode {
	case "", "full", "enable-only", "disable-only":
		return nil
	}
	return fmt.Errorf("preset mode %q: full, enable-only or disable-only expected", mode)
}

// Revert undoes the administrator's changes to the named units
// (systemctl revert): drop-in directories and masks in the install and
// runtime directories are removed, and so is a unit file there when a
// later unit directory (the vendor's) has one of the same name. A unit
// that exists only in the install directory keeps its file.
func (m *Manager) Revert(names []string) (api.Changes, error) {
	var res api.Changes
	admin := []string{}
	if d, err := m.installDir(false); err == nil {
		admin = append(admin, d)
	}
	if d, err := m.installDir(true); err == nil && (len(admin) == 0 || d != admin[0]) {
		admin = append(admin, d)
	}
	isAdmin := func(d string) bool {
		for _, a := range admin {
			if filepath.Clean(a) == filepath.Clean(d) {
				return true
			}
		}
		return false
	}
	remove := func(p string) error {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("revert: %w", err)
		}
		res.Changes = append(res.Changes, api.Change{Type: "unlink", Path: p})
		return nil
	}
	for _, name := range names {
		if err := checkInstallName(name); err != nil {
			return res, fmt.Errorf("revert: %w", err)
		}
		vendor := false
		for _, d := range m.searchPaths() {
			if isAdmin(d) {
				continue
			}
			if _, err := os.Lstat(filepath.Join(d, name)); err == nil {
				vendor = true
			}
		}
		for _, d := range admin {
			dropins := filepath.Join(d, name+".d")
			if entries, err := os.ReadDir(dropins); err == nil {
				for _, e := range entries {
					if err := remove(filepath.Join(dropins, e.Name())); err != nil {
						return res, err
					}
				}
				if err := remove(dropins); err != nil {
					return res, err
				}
			}
			p := filepath.Join(d, name)
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			masked := false
			if fi.Mode()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				masked = target == "/dev/null"
			}
			if masked || vendor {
				if err := remove(p); err != nil {
					return res, err
				}
			}
		}
	}
	m.installChanged()
	return res, nil
}

// AddDependency links the named units into target's .wants (dep "Wants")
// or .requires ("Requires") directory in the install directory, as
// systemctl add-wants and add-requires do; the links lead to each unit's
// file. A link of that name to another file is replaced only with force.
func (m *Manager) AddDependency(names []string, target, dep string, runtime, force bool) (api.Changes, error) {
	var res api.Changes
	var suffix string
	switch dep {
	case "Wants":
		suffix = ".wants"
	case "Requires":
		suffix = ".requires"
	default:
		return res, fmt.Errorf("add dependency: type %q: Wants or Requires expected", dep)
	}
	if err := checkInstallName(target); err != nil {
		return res, fmt.Errorf("add dependency: %w", err)
	}
	dir, err := m.installDir(runtime)
	if err != nil {
		return res, fmt.Errorf("add dependency: %w", err)
	}
	for _, name := range names {
		if err := checkInstallName(name); err != nil {
			return res, fmt.Errorf("add dependency: %w", err)
		}
		cfg, err := unitfile.Load(m.searchPaths(), name, m.opts.Specifiers)
		if err != nil || cfg == nil || cfg.Fragment == "" {
			return res, &NotFoundError{Name: name}
		}
		if cfg.LoadState == unitfile.LoadStateMasked {
			return res, &MaskedError{Name: name}
		}
		link := filepath.Join(dir, target+suffix, name)
		if cur, err := os.Readlink(link); err == nil {
			if cur == cfg.Fragment {
				continue
			}
			if !force {
				return res, fmt.Errorf("add dependency: %s already exists and points to %s (use --force)", link, cur)
			}
		}
		if _, err := os.Lstat(link); err == nil {
			if !force {
				return res, fmt.Errorf("add dependency: %s already exists (use --force)", link)
			}
			if err := os.Remove(link); err != nil {
				return res, fmt.Errorf("add dependency: %w", err)
			}
			res.Changes = append(res.Changes, api.Change{Type: "unlink", Path: link})
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return res, fmt.Errorf("add dependency: %w", err)
		}
		if err := os.Symlink(cfg.Fragment, link); err != nil {
			return res, fmt.Errorf("add dependency: %w", err)
		}
		res.Changes = append(res.Changes, api.Change{Type: "symlink", Path: link, Destination: cfg.Fragment})
	}
	m.installChanged()
	return res, nil
}
