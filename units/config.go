package units

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"vigil/units/api"
	"vigil/units/unitfile"
)

//go:embed builtin
var builtinUnits embed.FS

// config is a unit's decoded configuration.
type config = unitfile.Unit

// builtinDir is where the standard targets are written for the loader: the
// last, lowest-precedence search path, so any file of the same name wins.
func (m *Manager) builtinDir() string { return filepath.Join(m.opts.RuntimeDir, "builtin-units") }

func (m *Manager) writeBuiltinUnits() error {
	dir := m.builtinDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("builtin units: %w", err)
	}
	return fs.WalkDir(builtinUnits, "builtin", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := builtinUnits.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, d.Name()), data, 0o644)
	})
}

func (m *Manager) searchPaths() []string {
	return append(append(append([]string(nil), m.opts.UnitPaths...), m.transientDir(), m.generatedDir()), m.builtinDir())
}

// scan (re)reads every unit file. Existing units keep their runtime state.
func (m *Manager) scan() ReloadSummary {
	var sum ReloadSummary
	m.forgetFileStates()
	genProblems := m.runGenerators()
	if m.unitFiles == nil {
		m.unitFiles = unitfile.NewFileCache()
	}
	cfgs, problems := unitfile.ScanCached(m.searchPaths(), m.opts.Specifiers, m.unitFiles)
	m.scanStamps = m.unitFiles
	defer func() { m.scanStamps = nil }()
	m.problems = append(m.problems[:0], genProblems...)
	for _, p := range problems {
		m.problems = append(m.problems, p.Error())
		m.errorf("%v", p)
	}
	seen := map[string]bool{}
	names := make([]string, 0, len(cfgs))
	for name := range cfgs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cfg := cfgs[name]
		if cfg.Name != name {
			continue // an alias entry of the map
		}
		seen[name] = true
		if old := m.units[name]; old != nil {
			if m.reconfigure(old, cfg) {
				sum.Changed = append(sum.Changed, name)
			}
			continue
		}
		m.addUnit(cfg)
		sum.Added = append(sum.Added, name)
	}
	// Units whose files went away: drop them if they are idle, keep them
	// (as not-found) while they run.
	for name, u := range m.units {
		if u.Name != name || seen[name] || u.cfg == nil || isForeignMount(u) {
			continue
		}
		if u.active.IsInactiveOrFailed() && u.job == nil {
			m.removeUnit(u)
		} else {
			u.LoadState = LoadNotFound
			u.cfg = nil
		}
		sum.Removed = append(sum.Removed, name)
	}
	m.rebuildGraph()
	return sum
}

// ReloadSummary says what a daemon-reload changed.
type ReloadSummary struct{ Added, Removed, Changed []string }

// hashConfig identifies a unit's files by path, size and modification
// time, as systemd's NeedDaemonReload does: the loader has read the files
// already, and reading them again on every scan would double the I/O of
// boot and reload.
func hashConfig(cfg *config) string { return stampConfig(cfg, nil) }

// stampConfig is hashConfig with the files' stamps taken from the scan
// that just read them, where it has them, instead of one more stat each.
func stampConfig(cfg *config, scanned *unitfile.FileCache) string {
	return string(appendStamp(nil, cfg, scanned))
}

// appendStamp appends stampConfig's text to b.
func appendStamp(b []byte, cfg *config, scanned *unitfile.FileCache) []byte {
	write := func(f string, size int64, mtime time.Time) {
		b = append(b, f...)
		b = append(b, ':')
		b = strconv.AppendInt(b, size, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, mtime.UnixNano(), 10)
		b = append(b, ';')
	}
	for i := -1; i < len(cfg.DropIns); i++ {
		f := cfg.Fragment
		if i >= 0 {
			f = cfg.DropIns[i]
		}
		if f == "" {
			continue
		}
		if st, ok := scanned.Stamp(f); ok {
			write(f, st.Size, st.ModTime)
		} else if fi, err := os.Stat(f); err == nil {
			write(f, fi.Size(), fi.ModTime())
		} else {
			b = append(b, f...)
		}
	}
	return b
}

func (m *Manager) newUnit(name string) *Unit {
	u := &Unit{m: m, Name: name, active: StateInactive, sub: "dead", conditionResult: true}
	if n, err := unitfile.ParseName(name); err == nil {
		u.Type = string(n.Type)
	}
	return u
}

func (m *Manager) addUnit(cfg *config) *Unit {
	u := m.newUnit(cfg.Name)
	m.applyConfig(u, cfg)
	m.units[u.Name] = u
	for _, a := range u.Aliases {
		if _, taken := m.units[a]; !taken {
			m.units[a] = u
		}
	}
	m.unitSetChanged(u.Name, true)
	return u
}

func (m *Manager) removeUnit(u *Unit) {
	for name, x := range m.units {
		if x == u {
			delete(m.units, name)
		}
	}
	m.forgetRuns(u)
	m.unitSetChanged(u.Name, false)
}

// applyConfig sets everything that comes from the files.
func (m *Manager) applyConfig(u *Unit, cfg *config) {
	u.cfg = cfg
	u.Type = string(cfg.Type)
	u.Aliases = cfg.Aliases
	u.Description = cfg.Unit.Description
	u.Fragment = cfg.Fragment
	u.DropIns = cfg.DropIns
	u.LoadState = string(cfg.LoadState)
	u.LoadError = ""
	// Built on the stack and kept only if it differs: on a reload most
	// units' files did not change.
	var buf [256]byte
	if stamp := appendStamp(buf[:0], cfg, m.scanStamps); string(stamp) != u.loadedHash {
		u.loadedHash = string(stamp)
	}
	if cfg.LoadState == unitfile.LoadStateBadSetting || unitfile.HasErrors(cfg.Problems) {
		u.LoadState = LoadBadSetting
		var msgs []string
		for _, p := range cfg.Problems {
			if p.Severity == unitfile.SeverityError {
				msgs = append(msgs, p.Error())
			}
		}
		u.LoadError = strings.Join(msgs, "; ")
	}
	u.startLimit.interval = cfg.Unit.StartLimitInterval
	u.startLimit.burst = cfg.Unit.StartLimitBurst
	if u.LoadState != LoadLoaded {
		if u.behaviour == nil {
			u.behaviour = &inertBehaviour{u: u}
		}
		return
	}
	if u.behaviour != nil {
		if _, inert := u.behaviour.(*inertBehaviour); !inert {
			u.behaviour.Reconfigure()
			return
		}
	}
	u.behaviour = m.newBehaviour(u)
}

func (m *Manager) newBehaviour(u *Unit) Behaviour {
	switch u.cfg.Type {
	case unitfile.TypeService:
		if u.cfg.Service != nil {
			return newService(u)
		}
	case unitfile.TypeTarget:
		return &target{u: u}
	case unitfile.TypeDevice:
		return newDevice(u)
	case unitfile.TypeMount:
		if u.cfg.Mount != nil {
			return newMount(u)
		}
	case unitfile.TypeAutomount:
		if u.cfg.Automount != nil {
			return newAutomount(u)
		}
	case unitfile.TypeSwap:
		if u.cfg.Swap != nil {
			return newSwap(u)
		}
	case unitfile.TypeSocket:
		if u.cfg.Socket != nil {
			return newSocketUnit(u)
		}
	case unitfile.TypeTimer:
		if u.cfg.Timer != nil {
			t, err := newTimer(u)
			if err != nil {
				// The loader keeps calendar expressions as written; one
				// that does not parse makes the unit a bad setting.
				u.LoadState = LoadBadSetting
				u.LoadError = fmt.Sprintf("%s: %v", u.Fragment, err)
				m.errorf("%s: %v", u.Name, u.LoadError)
				return &inertBehaviour{u: u}
			}
			return t
		}
	case unitfile.TypePath:
		if u.cfg.Path != nil {
			return newPathUnit(u)
		}
	case unitfile.TypeScope:
		if u.cfg.Scope != nil {
			return newScope(u)
		}
	case unitfile.TypeSlice:
		return newSlice(u)
	}
	return &unsupported{target: target{u: u}}
}

// reconfigure takes a new configuration for a known unit after a reload,
// reporting whether it changed.
func (m *Manager) reconfigure(u *Unit, cfg *config) bool {
	// The stamp is computed once, by applyConfig, from the scan's stats.
	before, loadState := u.loadedHash, u.LoadState
	m.applyConfig(u, cfg)
	changed := u.loadedHash != before || loadState != string(cfg.LoadState)
	for _, a := range u.Aliases {
		if _, taken := m.units[a]; !taken {
			m.units[a] = u
		}
	}
	return changed
}

// LoadUnit returns the unit of that name, loading its file (or a template
// instance) if needed. Unknown names give a unit with LoadState not-found.
func (m *Manager) LoadUnit(name string) (*Unit, error) {
	if u := m.units[name]; u != nil {
		return u, nil
	}
	n, err := unitfile.ParseName(name)
	if err != nil {
		return nil, err // ParseName names the unit and the reason
	}
	if n.IsTemplate {
		return nil, fmt.Errorf("unit %s is a template: name an instance (%s)", name, n.WithInstance("NAME"))
	}
	if name == "default.target" {
		if mu, err := m.LoadUnit("multi-user.target"); err == nil {
			m.units[name] = mu
			return mu, nil
		}
	}
	cfg, err := unitfile.Load(m.searchPaths(), name, m.opts.Specifiers)
	var u *Unit
	switch {
	case n.Type == unitfile.TypeDevice && (cfg == nil || cfg.LoadState == unitfile.LoadStateNotFound):
		// Device units need no file (device.go).
		u = m.newDeviceUnit(name)
	case cfg != nil:
		u = m.addUnit(cfg)
	case errors.Is(err, fs.ErrNotExist) || err == nil:
		u = m.newUnit(name)
		u.LoadState = LoadNotFound
		u.LoadError = fmt.Sprintf("unit %s not found", name)
		u.behaviour = &inertBehaviour{u: u}
		m.units[name] = u
	default:
		u = m.newUnit(name)
		u.LoadState = LoadError
		u.LoadError = err.Error()
		u.behaviour = &inertBehaviour{u: u}
		m.units[name] = u
	}
	m.rebuildGraph()
	return u, nil
}

// canonical resolves an alias to the unit's own name.
func (m *Manager) canonical(name string) string {
	if u := m.units[name]; u != nil {
		return u.Name
	}
	return name
}

// rebuildGraph recomputes every unit's dependencies, with the implicit
// ones and the inverses, from the configurations.
func (m *Manager) rebuildGraph() {
	units := m.Units()
	for _, u := range units {
		// Emptied, not replaced: a reload rebuilds the same graph, and
		// the maps keep their room (their allocation was a fifth of a
		// daemon-reload's CPU time with a few dozen units).
		for k := range u.deps {
			clear(u.deps[k])
		}
	}
	add := func(u *Unit, k DepKind, name string) {
		name = m.canonical(name)
		if name == u.Name {
			return
		}
		u.addDep(k, name)
		if other := m.units[name]; other != nil {
			other.addDep(k.inverse(), u.Name)
		}
	}
	for _, u := range units {
		cfg := u.cfg
		if cfg == nil {
			continue
		}
		s := &cfg.Unit
		for _, d := range []struct {
			k     DepKind
			names []string
		}{
			{Requires, s.Requires}, {Requisite, s.Requisite}, {Wants, s.Wants}, {BindsTo, s.BindsTo},
			{PartOf, s.PartOf}, {Conflicts, s.Conflicts}, {After, s.After}, {Before, s.Before},
			{OnFailure, s.OnFailure}, {OnSuccess, s.OnSuccess},
		} {
			for _, name := range d.names {
				add(u, d.k, name)
			}
		}
		addActivationDeps(u, cfg, add)
		m.addMountDeps(u, cfg, add)
		m.addAutomountDeps(u, cfg, add)
		addSliceDeps(u, cfg, add)
		if !s.DefaultDependencies {
			continue
		}
		switch cfg.Type {
		case unitfile.TypeService, unitfile.TypeSocket, unitfile.TypeTimer, unitfile.TypePath:
			add(u, Requires, "sysinit.target")
			add(u, After, "sysinit.target")
			if cfg.Type == unitfile.TypeService {
				add(u, After, "basic.target")
			}
			add(u, Conflicts, "shutdown.target")
			add(u, Before, "shutdown.target")
			switch cfg.Type {
			case unitfile.TypeSocket:
				add(u, Before, "sockets.target")
			case unitfile.TypeTimer:
				add(u, Before, "timers.target")
			case unitfile.TypePath:
				add(u, Before, "paths.target")
			}
		case unitfile.TypeTarget, unitfile.TypeScope, unitfile.TypeSlice:
			add(u, Conflicts, "shutdown.target")
			add(u, Before, "shutdown.target")
		}
	}
	m.addRuntimeWants(add)
	// A target with default dependencies is ordered after what it pulls in.
	for _, u := range units {
		if u.cfg == nil || u.cfg.Type != unitfile.TypeTarget || !u.cfg.Unit.DefaultDependencies {
			continue
		}
		for _, k := range []DepKind{Wants, Requires, BindsTo} {
			for name := range u.deps[k] {
				other := m.units[name]
				if other == nil || other.hasDep(After, u.Name) || other.hasDep(Before, u.Name) {
					continue
				}
				if other.cfg != nil && !other.cfg.Unit.DefaultDependencies {
					continue
				}
				add(u, After, name)
			}
		}
	}
}

func (u *Unit) jobTimeout() time.Duration {
	if u.Type == string(unitfile.TypeDevice) {
		return u.m.deviceJobTimeout(u)
	}
	if u.cfg == nil || u.cfg.Unit.JobTimeout == unitfile.Infinity {
		return 0
	}
	return u.cfg.Unit.JobTimeout
}

// execContext returns the unit's exec settings, if its type has them.
func (u *Unit) execContext() *unitfile.ExecContext {
	switch {
	case u.cfg == nil:
		return nil
	case u.cfg.Service != nil:
		return &u.cfg.Service.ExecContext
	case u.cfg.Socket != nil:
		return &u.cfg.Socket.ExecContext
	case u.cfg.Mount != nil:
		return &u.cfg.Mount.ExecContext
	}
	return nil
}

// Reload re-reads unit files without restarting anything.
func (m *Manager) Reload() api.ReloadResult {
	sum := m.scan()
	m.syncTriggers()
	return api.ReloadResult{Added: sum.Added, Removed: sum.Removed, Changed: sum.Changed, Problems: m.problems}
}
