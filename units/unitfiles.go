package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// This file holds what systemctl's unit-file verbs need beyond enable and
// disable (mask, unmask, reenable, set-default, the links of a unit), the
// cache of unit-file states, the manager's own environment and the
// watchers of units being added and removed.

// UnitFileState is systemctl is-enabled's answer for a unit. Answers are
// cached until the next scan (daemon-reload) or install change, because
// finding one reads every unit directory: `systemctl status` and each
// D-Bus GetAll ask for it.
func (m *Manager) UnitFileState(name string) string {
	if st, ok := m.fileStates[name]; ok {
		return st
	}
	st := m.readUnitFileState(name)
	if m.fileStates == nil {
		m.fileStates = map[string]string{}
	}
	m.fileStates[name] = st
	return st
}

// readUnitFileState finds a unit's file state on disk.
func (m *Manager) readUnitFileState(name string) string {
	if m.transients[name] != nil {
		return "transient"
	}
	state, err := unitfile.IsEnabled(m.opts.UnitPaths, name, m.opts.Specifiers)
	if err != nil {
		if u := m.units[name]; u != nil && u.Fragment != "" && strings.HasPrefix(u.Fragment, m.builtinDir()) {
			return "static"
		}
		return "not-found"
	}
	return state
}

// forgetFileStates empties the unit-file state cache.
func (m *Manager) forgetFileStates() { m.fileStates = nil }

// installDir is where mask and set-default put their links: the first unit
// directory, or for runtime changes the first one under /run or the
// runtime directory.
func (m *Manager) installDir(runtime bool) (string, error) {
	if !runtime {
		if len(m.opts.UnitPaths) == 0 {
			return "", fmt.Errorf("no unit directory")
		}
		return m.opts.UnitPaths[0], nil
	}
	for _, p := range m.opts.UnitPaths {
		if strings.HasPrefix(p, "/run/") || (m.opts.RuntimeDir != "" && strings.HasPrefix(p, m.opts.RuntimeDir+"/")) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no unit directory under /run or %s", m.opts.RuntimeDir)
}

// MaskedError says a unit is masked, with systemd's words for it.
type MaskedError struct{ Name string }

func (e *MaskedError) Error() string { return fmt.Sprintf("Unit %s is masked.", e.Name) }

// Mask links each named unit to /dev/null in the install directory, so
// that it loads as masked and refuses to start. A unit file of the same
// name already there (not a link) is not overwritten.
func (m *Manager) Mask(names []string, runtime bool) (api.Changes, error) {
	var res api.Changes
	dir, err := m.installDir(runtime)
	if err != nil {
		return res, fmt.Errorf("mask: %w", err)
	}
	for _, name := range names {
		if err := checkInstallName(name); err != nil {
			return res, fmt.Errorf("mask: %w", err)
		}
		p := filepath.Join(dir, name)
		if cur, err := os.Readlink(p); err == nil {
			if cur == "/dev/null" {
				continue
			}
			if err := os.Remove(p); err != nil {
				return res, fmt.Errorf("mask %s: %w", name, err)
			}
			res.Changes = append(res.Changes, api.Change{Type: "unlink", Path: p})
		} else if _, err := os.Lstat(p); err == nil {
			return res, fmt.Errorf("mask %s: %s exists and is a unit file, not a link: remove it first", name, p)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, fmt.Errorf("mask %s: %w", name, err)
		}
		if err := os.Symlink("/dev/null", p); err != nil {
			return res, fmt.Errorf("mask %s: %w", name, err)
		}
		res.Changes = append(res.Changes, api.Change{Type: "symlink", Path: p, Destination: "/dev/null"})
	}
	m.installChanged()
	return res, nil
}

// Unmask removes the /dev/null links of the named units from every unit
// directory (runtime: only from the runtime one).
func (m *Manager) Unmask(names []string, runtime bool) (api.Changes, error) {
	var res api.Changes
	dirs := m.opts.UnitPaths
	if runtime {
		dir, err := m.installDir(true)
		if err != nil {
			return res, fmt.Errorf("unmask: %w", err)
		}
		dirs = []string{dir}
	}
	for _, name := range names {
		if err := checkInstallName(name); err != nil {
			return res, fmt.Errorf("unmask: %w", err)
		}
		for _, dir := range dirs {
			p := filepath.Join(dir, name)
			if cur, err := os.Readlink(p); err != nil || cur != "/dev/null" {
				continue
			}
			if err := os.Remove(p); err != nil {
				return res, fmt.Errorf("unmask %s: %w", name, err)
			}
			res.Changes = append(res.Changes, api.Change{Type: "unlink", Path: p})
		}
	}
	m.installChanged()
	return res, nil
}

// Reenable disables, then enables the named units: their links are made
// afresh from [install] as it is now.
func (m *Manager) Reenable(names []string) (api.Changes, error) {
	var res api.Changes
	ch, err := m.EnableDisable(false, names)
	res.Changes = append(res.Changes, ch.Changes...)
	if err != nil {
		return res, err
	}
	ch, err = m.EnableDisable(true, names)
	res.Changes = append(res.Changes, ch.Changes...)
	return res, err
}

// SetDefaultTarget makes default.target, in the install directory, a link
// to the named target's file.
func (m *Manager) SetDefaultTarget(name string) (api.Changes, error) {
	var res api.Changes
	if !strings.HasSuffix(name, ".target") {
		return res, fmt.Errorf("set-default: %s is not a target", name)
	}
	if err := checkInstallName(name); err != nil {
		return res, fmt.Errorf("set-default: %w", err)
	}
	cfg, err := unitfile.Load(m.searchPaths(), name, m.opts.Specifiers)
	if err != nil || cfg == nil || cfg.LoadState != unitfile.LoadStateLoaded || cfg.Fragment == "" {
		if err == nil || errors.Is(err, unitfile.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return res, &NotFoundError{Name: name}
		}
		return res, fmt.Errorf("set-default %s: %w", name, err)
	}
	dir, err := m.installDir(false)
	if err != nil {
		return res, fmt.Errorf("set-default: %w", err)
	}
	p := filepath.Join(dir, "default.target")
	if cur, err := os.Readlink(p); err == nil {
		if cur == cfg.Fragment {
			return res, nil
		}
		if err := os.Remove(p); err != nil {
			return res, fmt.Errorf("set-default: %w", err)
		}
		res.Changes = append(res.Changes, api.Change{Type: "unlink", Path: p})
	} else if _, err := os.Lstat(p); err == nil {
		return res, fmt.Errorf("set-default: %s is a unit file, not a link: remove it first", p)
	}
	if err := os.Symlink(cfg.Fragment, p); err != nil {
		return res, fmt.Errorf("set-default: %w", err)
	}
	res.Changes = append(res.Changes, api.Change{Type: "symlink", Path: p, Destination: cfg.Fragment})
	// default.target may be remembered as another unit's alias (LoadUnit
	// falls back to multi-user.target): forget that before scanning.
	if u := m.units["default.target"]; u != nil && u.Name != "default.target" {
		delete(m.units, "default.target")
	}
	m.installChanged()
	return res, nil
}

// UnitFileLinks lists the symlinks in the unit directories (and their
// .wants, .requires and .d directories) that lead to the named unit: its
// aliases, enablement links and mask.
func (m *Manager) UnitFileLinks(name string, runtime bool) ([]string, error) {
	if err := checkInstallName(name); err != nil {
		return nil, err
	}
	dirs := m.opts.UnitPaths
	if runtime {
		dir, err := m.installDir(true)
		if err != nil {
			return nil, err
		}
		dirs = []string{dir}
	}
	var fragment string
	if u := m.units[name]; u != nil {
		fragment = u.Fragment
	}
	var out []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		check := func(p, entry string) {
			target, err := os.Readlink(p)
			if err != nil {
				return
			}
			if entry == name && target == "/dev/null" || filepath.Base(target) == name || fragment != "" && target == fragment {
				out = append(out, p)
			}
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() && (strings.HasSuffix(e.Name(), ".wants") || strings.HasSuffix(e.Name(), ".requires")) {
				sub, _ := os.ReadDir(p)
				for _, s := range sub {
					check(filepath.Join(p, s.Name()), s.Name())
				}
				continue
			}
			check(p, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// checkInstallName refuses names that are not plain unit names (no paths).
func checkInstallName(name string) error {
	if strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q: a unit name, not a path, is expected", name)
	}
	if _, err := unitfile.ParseName(name); err != nil {
		return err
	}
	return nil
}

// installChanged reloads after links changed, as EnableDisable does.
func (m *Manager) installChanged() {
	m.forgetFileStates()
	m.scan()
	m.syncTriggers()
}

// Environment is the manager's environment, passed to every unit process
// before the unit's own.
func (m *Manager) Environment() []string {
	return append([]string(nil), m.opts.Environment...)
}

// SetEnvironment sets variables (KEY=VALUE) of the manager's environment
// for processes started from now on; unset removes variables by name
// (NAME) or exact assignment (NAME=VALUE). Unsetting happens first, as in
// systemd's UnsetAndSetEnvironment. Nothing changes if any entry is
// invalid.
func (m *Manager) SetEnvironment(unset, set []string) error {
	for _, a := range set {
		k, _, ok := strings.Cut(a, "=")
		if !ok || !validEnvName(k) {
			return fmt.Errorf("invalid environment assignment %q: NAME=VALUE expected", a)
		}
	}
	for _, a := range unset {
		k, _, _ := strings.Cut(a, "=")
		if !validEnvName(k) {
			return fmt.Errorf("invalid environment variable name %q", a)
		}
	}
	env := append([]string(nil), m.opts.Environment...)
	drop := func(match func(string) bool) {
		kept := env[:0]
		for _, e := range env {
			if !match(e) {
				kept = append(kept, e)
			}
		}
		env = kept
	}
	for _, a := range unset {
		if strings.Contains(a, "=") {
			drop(func(e string) bool { return e == a })
		} else {
			drop(func(e string) bool { return strings.HasPrefix(e, a+"=") })
		}
	}
	for _, a := range set {
		k, _, _ := strings.Cut(a, "=")
		drop(func(e string) bool { return strings.HasPrefix(e, k+"=") })
		env = append(env, a)
	}
	m.opts.Environment = env
	return nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// UnitByControlGroup names the unit whose cgroup is cg (as shown in
// ControlGroup, e.g. /system.slice/foo.service), or a group below it.
func (m *Manager) UnitByControlGroup(cg string) (string, bool) {
	if m.cgroups == nil || cg == "" {
		return "", false
	}
	best := ""
	bestLen := -1
	for _, u := range m.Units() {
		var rel string
		switch b := u.behaviour.(type) {
		case *service:
			rel = b.cgroup
		case *scope:
			rel = b.cgroup
		}
		if rel == "" {
			continue
		}
		name := m.cgroups.Name(rel)
		if (cg == name || strings.HasPrefix(cg, name+"/")) && len(name) > bestLen {
			best, bestLen = u.Name, len(name)
		}
	}
	return best, best != ""
}

// WatchUnitSet calls fn (on the loop) when a unit is added to the manager
// (loaded) or removed (dropped by daemon-reload or garbage collected). It
// returns a function that stops watching.
func (m *Manager) WatchUnitSet(fn func(name string, added bool)) func() {
	if m.unitSetWatchers == nil {
		m.unitSetWatchers = map[int]func(string, bool){}
	}
	m.nextWatcher++
	id := m.nextWatcher
	m.unitSetWatchers[id] = fn
	return func() { delete(m.unitSetWatchers, id) }
}

func (m *Manager) unitSetChanged(name string, added bool) {
	for _, fn := range m.unitSetWatchers {
		fn(name, added)
	}
}
