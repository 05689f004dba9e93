package units

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"vigil/observer"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// SetPropertyDropIn is the drop-in set-property keeps its settings in.
const SetPropertyDropIn = "50-set-property.toml"

func (m *Manager) onSetPropertyEvent(ev *observer.Event) {
	req, ok := ev.Payload.(Request)
	if !ok {
		return
	}
	var args api.SetPropertyArgs
	if !decodeOr(req, &args) {
		return
	}
	res, err := m.SetProperty(args)
	if err != nil {
		failWith(req, err)
		return
	}
	req.Reply(res)
}

// resourceKeys are the keys of [resources], which set-property may change.
func resourceKeys() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	t := reflect.TypeOf(unitfile.ResourcesSection{})
	for i := 0; i < t.NumField(); i++ {
		if k := t.Field(i).Tag.Get("key"); k != "" {
			out[k] = t.Field(i).Type
		}
	}
	return out
}

// SetProperty changes [resources] keys of a unit: it writes them into the
// unit's 50-set-property.toml drop-in (merged with what earlier calls put
// there; an empty value removes a key), reloads the unit from its files,
// and lets a running unit apply the result to its cgroup at once. A value
// the loader rejects leaves the drop-in as it was.
func (m *Manager) SetProperty(args api.SetPropertyArgs) (api.SetPropertyResult, error) {
	var res api.SetPropertyResult
	u := m.units[args.Unit]
	if u == nil {
		return res, &NotFoundError{Name: args.Unit}
	}
	if u.cfg == nil || u.LoadState != LoadLoaded {
		return res, fmt.Errorf("unit %s is not loaded (%s)", u.Name, u.LoadState)
	}
	if len(args.Properties) == 0 {
		return res, fmt.Errorf("set-property %s: no KEY=VALUE given", u.Name)
	}
	dir, err := m.setPropertyDir(u.Name, args.Runtime)
	if err != nil {
		return res, err
	}
	path := filepath.Join(dir, SetPropertyDropIn)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return res, fmt.Errorf("set-property: %w", err)
	}
	text, err := mergeSetProperty(string(old), args.Properties)
	if err != nil {
		return res, fmt.Errorf("set-property %s: %w", u.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("set-property: %w", err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return res, fmt.Errorf("set-property: %w", err)
	}
	restore := func() {
		if old == nil {
			os.Remove(path)
		} else {
			os.WriteFile(path, old, 0o644)
		}
	}
	cfg, err := unitfile.Load(m.searchPaths(), u.Name, m.opts.Specifiers)
	if err != nil || cfg == nil {
		restore()
		return res, fmt.Errorf("set-property %s: reload: %v", u.Name, err)
	}
	if unitfile.HasErrors(cfg.Problems) {
		restore()
		var msgs []string
		for _, p := range cfg.Problems {
			if p.Severity == unitfile.SeverityError {
				msgs = append(msgs, p.Error())
			}
		}
		return res, fmt.Errorf("set-property %s: %s", u.Name, strings.Join(msgs, "; "))
	}
	if s, ok := u.behaviour.(*service); ok {
		s.cgroupWarnings = nil
	}
	m.reconfigure(u, cfg)
	if s, ok := u.behaviour.(*service); ok {
		res.Warnings = s.cgroupWarnings
	}
	if sl, ok := u.behaviour.(*sliceUnit); ok {
		res.Warnings = sl.warnings
	}
	u.infof("Properties set: %s (kept in %s).", strings.Join(args.Properties, " "), path)
	res.DropIn = path
	return res, nil
}

// setPropertyDir is the drop-in directory: in the first unit directory
// for a lasting change, in the first one under the runtime directory (or
// /run) for a runtime one.
func (m *Manager) setPropertyDir(name string, runtime bool) (string, error) {
	if !runtime {
		if len(m.opts.UnitPaths) == 0 {
			return "", fmt.Errorf("set-property: no unit directory")
		}
		return filepath.Join(m.opts.UnitPaths[0], name+".d"), nil
	}
	for _, p := range m.opts.UnitPaths {
		if strings.HasPrefix(p, "/run/") || (m.opts.RuntimeDir != "" && strings.HasPrefix(p, m.opts.RuntimeDir+"/")) {
			return filepath.Join(p, name+".d"), nil
		}
	}
	return "", fmt.Errorf("set-property --runtime: no unit directory under /run or %s", m.opts.RuntimeDir)
}

// mergeSetProperty rewrites the drop-in text old with the assignments
// ("memory-max=64M"; "memory-max=" removes the key). Only [resources]
// keys are accepted; values are written as TOML of the type the key
// takes, and the loader then checks them as it checks any unit file.
func mergeSetProperty(old string, assignments []string) (string, error) {
	keys := resourceKeys()
	type kv struct{ key, value string }
	var lines []kv
	for _, line := range strings.Split(old, "\n") {
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || strings.HasPrefix(k, "#") || strings.HasPrefix(k, "[") {
			continue
		}
		if _, known := keys[k]; known {
			lines = append(lines, kv{k, strings.TrimSpace(v)})
		}
	}
	for _, a := range assignments {
		k, v, ok := strings.Cut(a, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return "", fmt.Errorf("%q: expected KEY=VALUE", a)
		}
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("%q: the value is not UTF-8", a)
		}
		typ, known := keys[k]
		if !known {
			names := make([]string, 0, len(keys))
			for name := range keys {
				names = append(names, name)
			}
			if near, ok := unitfile.Nearest(k, names); ok {
				return "", fmt.Errorf("%q: not a [resources] key (did you mean '%s'?)", k, near)
			}
			return "", fmt.Errorf("%q: not a [resources] key", k)
		}
		var keep []kv
		for _, l := range lines {
			if l.key != k {
				keep = append(keep, l)
			}
		}
		lines = keep
		if v == "" {
			continue
		}
		lines = append(lines, kv{k, tomlValue(typ, v)})
	}
	var b strings.Builder
	b.WriteString("# Written by initctl set-property; each call rewrites this file.\n[resources]\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "%s = %s\n", l.key, l.value)
	}
	return b.String(), nil
}

// tomlValue writes a command-line value as TOML for a key of type typ:
// numbers for integer keys, booleans where true/false is meant, lists of
// "PATH VALUE" for device limits, strings otherwise.
func tomlValue(typ reflect.Type, v string) string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ.Kind() == reflect.Int:
		// Rewritten: TOML has no leading zeros ("007") and Atoi accepts them.
		if n, err := strconv.Atoi(v); err == nil {
			return strconv.Itoa(n)
		}
	case typ == reflect.TypeOf(unitfile.DeviceLimits{}):
		return "[" + unitfile.QuoteString(v) + "]"
	case typ == reflect.TypeOf(unitfile.Delegate{}):
		if v == "true" || v == "false" || v == "yes" || v == "no" {
			return strconv.FormatBool(v == "true" || v == "yes")
		}
	}
	return unitfile.QuoteString(v)
}
