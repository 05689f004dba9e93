package unitfile

import (
	"fmt"
	"path"
)

// TriggerSection is [trigger]: events that start the unit, declared in the
// unit itself instead of in a udev rule (SYSTEMD_WANTS=) or a path unit.
type TriggerSection struct {
	// Uevent lists device events that start the unit; any one matching
	// starts it.
	Uevent UeventTriggers `key:"uevent"`
}

// UeventTrigger matches one kind of device event. Every field given must
// match; values may be globs ("vd*"). Empty fields match anything.
type UeventTrigger struct {
	Action    string // "add", "change", "remove", ...
	Subsystem string // "block", "net", ...
	DevType   string // "disk", "partition", ...
	DevName   string // the node's name under /dev: "vdb", "input/event*"
	// Env matches further keys of the event: the kernel's (MODALIAS,
	// INTERFACE) and those Vigil adds (ID_FS_TYPE, ID_FS_UUID, ID_FS_LABEL).
	Env map[string]string
}

// UeventTriggers is the value of [trigger] uevent: one inline table or an
// array of them.
type UeventTriggers []UeventTrigger

// ueventTriggerKeys are the keys of one trigger table.
func ueventTriggerKeys() []string {
	return []string{"action", "subsystem", "devtype", "devname", "env"}
}

// decodeValue reads `uevent = { subsystem = "block", env = { ... } }` or an
// array of such tables; an empty array resets the list (in a drop-in).
func (ts *UeventTriggers) decodeValue(raw any, vc *valueCtx) error {
	var tables []any
	switch v := raw.(type) {
	case map[string]any:
		tables = []any{v}
	case []map[string]any:
		for _, t := range v {
			tables = append(tables, t)
		}
	case []any:
		if len(v) == 0 {
			*ts = nil
			return nil
		}
		tables = v
	default:
		return typeError(`a table ({ subsystem = "block", action = "add" }) or an array of tables`, raw)
	}
	out := append(UeventTriggers(nil), *ts...)
	for _, t := range tables {
		table, ok := t.(map[string]any)
		if !ok {
			return typeError("a table of event keys", t)
		}
		trig, err := decodeUeventTrigger(table)
		if err != nil {
			return err
		}
		out = append(out, trig)
	}
	*ts = out
	return nil
}

func decodeUeventTrigger(table map[string]any) (UeventTrigger, error) {
	var trig UeventTrigger
	if len(table) == 0 {
		return trig, fmt.Errorf("an empty trigger would match every device event")
	}
	for _, key := range sortedKeys(table) {
		raw := table[key]
		if key == "env" {
			env, ok := raw.(map[string]any)
			if !ok {
				return trig, fmt.Errorf("env: %w", typeError(`a table of KEY = "value"`, raw))
			}
			trig.Env = make(map[string]string, len(env))
			for _, k := range sortedKeys(env) {
				if !validEventKey(k) {
					return trig, fmt.Errorf("env: %q is not an event key (letters, digits, '_', '.', '-')", k)
				}
				s, ok := env[k].(string)
				if !ok {
					return trig, fmt.Errorf("env.%s: %w", k, typeError("a string", env[k]))
				}
				if err := checkGlob(s); err != nil {
					return trig, fmt.Errorf("env.%s: %w", k, err)
				}
				trig.Env[k] = s
			}
			continue
		}
		var dst *string
		switch key {
		case "action":
			dst = &trig.Action
		case "subsystem":
			dst = &trig.Subsystem
		case "devtype":
			dst = &trig.DevType
		case "devname":
			dst = &trig.DevName
		default:
			return trig, fmt.Errorf("%s", unknownKeyMessage(key, ueventTriggerKeys()))
		}
		s, ok := raw.(string)
		if !ok {
			return trig, fmt.Errorf("%s: %w", key, typeError("a string", raw))
		}
		if err := checkGlob(s); err != nil {
			return trig, fmt.Errorf("%s: %w", key, err)
		}
		*dst = s
	}
	return trig, nil
}

// validEventKey accepts the characters the uevent parser accepts in keys.
func validEventKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// checkGlob refuses patterns path.Match cannot use, so a trigger fails
// when the unit loads rather than never matching.
func checkGlob(s string) error {
	if _, err := path.Match(s, ""); err != nil {
		return fmt.Errorf("bad pattern %q: %w", s, err)
	}
	return nil
}
