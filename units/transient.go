package units

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"vigil/units/api"
	"vigil/units/procfs"
	"vigil/units/unitfile"
)

// Transient units are made at run time (systemd-run, StartTransientUnit):
// their settings are written as a unit file in RuntimeDir/transient, which
// the loader searches after the unit directories, so that `cat`, `status`
// and daemon-reload see them like any other unit. A transient unit is
// garbage collected (its file removed, the unit forgotten) once it is
// inactive, has no job and nobody holds a reference to it (AddRef).

// TransientSetting is one key of a transient unit's file. Value is a
// string, bool, int64, uint64, []string or [][]string (word lists, for
// exec-start).
type TransientSetting struct {
	Section, Key string
	Value        any
}

// TransientUnit describes a unit to make at run time: a service, or a
// scope that adopts running processes (scope.go).
type TransientUnit struct {
	Name     string
	Settings []TransientSetting
	// CollectMode is "inactive" (the default: a failed unit stays until
	// reset-failed) or "inactive-or-failed".
	CollectMode string
	// PIDs are the processes a scope adopts when it starts (required for
	// scopes, refused for services).
	PIDs []int
	// Controller is the bus name a scope's client named as its
	// controller (shown as the Controller property).
	Controller string
}

// transientUnit is the manager's record of one transient unit.
type transientUnit struct {
	path    string
	refs    int
	collect string
}

// UnitExistsError refuses a transient unit whose name is taken.
type UnitExistsError struct{ Name string }

func (e *UnitExistsError) Error() string { return fmt.Sprintf("Unit %s already exists.", e.Name) }

func (m *Manager) transientDir() string { return filepath.Join(m.opts.RuntimeDir, "transient") }

// IsTransient reports whether the named unit was made at run time.
func (m *Manager) IsTransient(name string) bool { return m.transients[m.canonical(name)] != nil }

// StartTransient writes the unit, loads it and enqueues its start job in
// mode. With ref, the caller holds a reference (see RefUnit) and must drop
// it with UnrefUnit. Invalid settings give an error naming the key, and
// leave nothing behind.
func (m *Manager) StartTransient(t TransientUnit, mode string, ref bool) (*Job, error) {
	n, err := unitfile.ParseName(t.Name)
	if err != nil {
		return nil, err
	}
	if n.IsTemplate {
		return nil, fmt.Errorf("transient unit %s: a template cannot be started", t.Name)
	}
	switch n.Type {
	case unitfile.TypeService:
		if len(t.PIDs) > 0 {
			return nil, fmt.Errorf("transient unit %s: only scopes adopt processes (PIDs)", t.Name)
		}
	case unitfile.TypeScope:
		if len(t.PIDs) == 0 {
			return nil, fmt.Errorf("transient unit %s: a scope needs processes to adopt (PIDs)", t.Name)
		}
		for _, pid := range t.PIDs {
			if pid <= 0 {
				return nil, fmt.Errorf("transient unit %s: invalid PID %d", t.Name, pid)
			}
			if pid == os.Getpid() {
				return nil, fmt.Errorf("transient unit %s: PID %d is the manager itself", t.Name, pid)
			}
		}
	default:
		return nil, fmt.Errorf("transient unit %s: only services and scopes can be made at run time", t.Name)
	}
	switch t.CollectMode {
	case "":
		t.CollectMode = "inactive"
	case "inactive", "inactive-or-failed":
	default:
		return nil, fmt.Errorf("transient unit %s: invalid CollectMode %q", t.Name, t.CollectMode)
	}
	old := m.units[t.Name]
	if old != nil && !(old.LoadState == LoadNotFound && old.active.IsInactiveOrFailed() && old.job == nil) {
		return nil, &UnitExistsError{Name: t.Name}
	}
	if cfg, _ := unitfile.Load(m.searchPaths(), t.Name, m.opts.Specifiers); cfg != nil && cfg.LoadState != unitfile.LoadStateNotFound {
		return nil, &UnitExistsError{Name: t.Name} // a file of that name, not loaded yet
	}
	text, err := RenderTransient(t)
	if err != nil {
		return nil, fmt.Errorf("transient unit %s: %w", t.Name, err)
	}
	dir := m.transientDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("transient unit %s: %w", t.Name, err)
	}
	path := filepath.Join(dir, t.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("transient unit %s: %w", t.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("transient unit %s: %w", t.Name, err)
	}
	cfg, err := unitfile.Load(m.searchPaths(), t.Name, m.opts.Specifiers)
	if err == nil && cfg != nil && unitfile.HasErrors(cfg.Problems) {
		var msgs []string
		for _, p := range cfg.Problems {
			if p.Severity == unitfile.SeverityError {
				msgs = append(msgs, p.Error())
			}
		}
		err = fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	if err != nil || cfg == nil || cfg.Fragment != path {
		os.Remove(path)
		if err == nil {
			err = fmt.Errorf("the loader did not read %s", path)
		}
		return nil, fmt.Errorf("transient unit %s: %w", t.Name, err)
	}
	if old != nil {
		m.removeUnit(old)
	}
	m.watchTransients()
	rec := &transientUnit{path: path, collect: t.CollectMode}
	if ref {
		rec.refs = 1
	}
	m.transients[t.Name] = rec
	delete(m.fileStates, t.Name)
	u, err := m.LoadUnit(t.Name)
	if err != nil {
		m.dropTransient(t.Name)
		return nil, err
	}
	u.debugf("Transient unit created from %s.", path)
	if sc, ok := u.behaviour.(*scope); ok {
		sc.adopt = append([]int{}, t.PIDs...)
		sc.controller = t.Controller
	}
	j, err := m.Enqueue(u.Name, api.JobStart, mode)
	if err != nil {
		m.scheduleCollect(u.Name)
		return nil, err
	}
	j.OnDone(func(j *Job) { m.scheduleCollect(j.Unit.Name) })
	return j, nil
}

// watchTransients sets up the record of transient units and the watcher
// that collects them, once.
func (m *Manager) watchTransients() {
	if m.transients == nil {
		m.transients = map[string]*transientUnit{}
		m.WatchUnits(func(u *Unit) { m.scheduleCollect(u.Name) })
	}
}

// transientOwnerFile records which manager process wrote the transient
// units: see takeOverTransients.
func (m *Manager) transientOwnerFile() string {
	return filepath.Join(m.opts.RuntimeDir, "transient.owner")
}

// takeOverTransients runs before the first scan. Transient unit files
// left by an earlier manager would load as ordinary units that nobody
// collects: a manager that starts fresh removes them. A manager that
// re-executed itself is the same process (same PID and start time, same
// boot): it keeps them and takes them as transient again, so that its
// transient units survive the re-exec.
func (m *Manager) takeOverTransients() {
	dir := m.transientDir()
	stamp := managerStamp()
	prev, _ := os.ReadFile(m.transientOwnerFile())
	keep := stamp != "" && string(prev) == stamp
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		m.warnf("transient units: %v", err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		_, nameErr := unitfile.ParseName(e.Name())
		if !keep || nameErr != nil || !e.Type().IsRegular() {
			if err := os.RemoveAll(p); err != nil {
				m.warnf("remove left-over transient unit %s: %v", p, err)
			} else {
				m.infof("removed left-over transient unit %s (written by an earlier manager)", p)
			}
			continue
		}
		m.watchTransients()
		m.transients[e.Name()] = &transientUnit{path: p, collect: collectModeOf(p)}
	}
	if stamp == "" {
		return
	}
	if err := os.WriteFile(m.transientOwnerFile(), []byte(stamp), 0o644); err != nil {
		m.warnf("transient units: %v", err)
	}
}

// managerStamp identifies this manager process across an exec of itself:
// the boot, the PID and the process's start time (which exec keeps).
// Empty when unreadable, which makes every manager start fresh.
func managerStamp() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return ""
	}
	st, err := procfs.ParseStat(stat)
	if err != nil || !st.HasStartTime {
		return ""
	}
	return fmt.Sprintf("%s %d %d\n", strings.TrimSpace(string(boot)), os.Getpid(), st.StartTime)
}

// collectModeLine marks a transient file's collect mode, so that a
// re-executed manager collects the unit as it was asked.
const collectModeLine = "# collect-mode: "

func collectModeOf(path string) string {
	data, err := os.ReadFile(path)
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, collectModeLine); ok && v == "inactive-or-failed" {
				return v
			}
		}
	}
	return "inactive"
}

// RefUnit holds a transient unit: it is not collected while referenced.
func (m *Manager) RefUnit(name string) error {
	t := m.transients[m.canonical(name)]
	if t == nil {
		if m.units[name] == nil {
			return &NotFoundError{Name: name}
		}
		return nil // units from files are never collected
	}
	t.refs++
	return nil
}

// UnrefUnit drops a reference of RefUnit (or StartTransient's).
func (m *Manager) UnrefUnit(name string) {
	name = m.canonical(name)
	if t := m.transients[name]; t != nil && t.refs > 0 {
		t.refs--
		m.scheduleCollect(name)
	}
}

// scheduleCollect checks, once the loop has finished what it is doing,
// whether a transient unit may go: removing a unit in the middle of a
// state change would pull it from under the code reporting the change.
func (m *Manager) scheduleCollect(name string) {
	if m.transients[name] == nil {
		return
	}
	m.AfterFunc(0, func() { m.collectTransient(name) })
}

func (m *Manager) collectTransient(name string) {
	t := m.transients[name]
	u := m.units[name]
	if t == nil || u == nil || t.refs > 0 || u.job != nil {
		return
	}
	if !(u.active == StateInactive || u.active == StateFailed && t.collect == "inactive-or-failed") {
		return
	}
	u.debugf("Transient unit collected.")
	m.dropTransient(name)
}

// dropTransient forgets a transient unit and removes its file.
func (m *Manager) dropTransient(name string) {
	t := m.transients[name]
	if t == nil {
		return
	}
	delete(m.transients, name)
	if err := os.Remove(t.path); err != nil && !os.IsNotExist(err) {
		m.warnf("%s: remove %s: %v", name, t.path, err)
	}
	// set-property's drop-in goes with the unit (its directory only if
	// nothing else is in it).
	for _, runtime := range []bool{false, true} {
		if dir, err := m.setPropertyDir(name, runtime); err == nil {
			os.Remove(filepath.Join(dir, SetPropertyDropIn))
			os.Remove(dir)
		}
	}
	if u := m.units[name]; u != nil {
		m.removeUnit(u)
		m.rebuildGraph()
	}
	delete(m.fileStates, name)
}

// RenderTransient writes a transient unit's settings as a unit file.
func RenderTransient(t TransientUnit) (string, error) {
	order := []string{}
	bySection := map[string][]TransientSetting{}
	for _, s := range t.Settings {
		if !validTOMLKey(s.Section) || !validTOMLKey(s.Key) {
			return "", fmt.Errorf("invalid key %s.%s", s.Section, s.Key)
		}
		if _, ok := bySection[s.Section]; !ok {
			order = append(order, s.Section)
		}
		bySection[s.Section] = append(bySection[s.Section], s)
	}
	rank := map[string]int{"unit": 0, "service": 1, "scope": 1, "resources": 2}
	sort.SliceStable(order, func(a, b int) bool {
		ra, oka := rank[order[a]]
		rb, okb := rank[order[b]]
		if !oka {
			ra = 10
		}
		if !okb {
			rb = 10
		}
		return ra < rb
	})
	var b strings.Builder
	b.WriteString("# Transient unit, made at run time by a D-Bus client (systemd-run).\n")
	if t.CollectMode == "inactive-or-failed" {
		b.WriteString(collectModeLine + t.CollectMode + "\n")
	}
	for _, sec := range order {
		fmt.Fprintf(&b, "\n[%s]\n", sec)
		seen := map[string]bool{}
		for _, s := range bySection[sec] {
			if seen[s.Key] {
				return "", fmt.Errorf("%s.%s set twice", sec, s.Key)
			}
			seen[s.Key] = true
			v, err := tomlLiteral(s.Value)
			if err != nil {
				return "", fmt.Errorf("%s.%s: %w", sec, s.Key, err)
			}
			fmt.Fprintf(&b, "%s = %s\n", s.Key, v)
		}
	}
	return b.String(), nil
}

func validTOMLKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// tomlLiteral renders a value as TOML.
func tomlLiteral(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return tomlString(x)
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		if x > 1<<63-1 {
			return "", fmt.Errorf("%d is too large", x)
		}
		return strconv.FormatUint(x, 10), nil
	case []string:
		parts := make([]string, 0, len(x))
		for _, s := range x {
			q, err := tomlString(s)
			if err != nil {
				return "", err
			}
			parts = append(parts, q)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case [][]string:
		parts := make([]string, 0, len(x))
		for _, words := range x {
			q, err := tomlLiteral(words)
			if err != nil {
				return "", err
			}
			parts = append(parts, q)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("unsupported value type %T", v)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%q is not valid UTF-8", s)
	}
	return unitfile.QuoteString(s), nil
}
