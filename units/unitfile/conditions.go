package unitfile

import (
	"fmt"
	"strings"
)

// Condition is one condition or assert of [unit.condition] or
// [unit.assert]: the unit starts only if it holds.
type Condition struct {
	Kind  string // "path-exists", "kernel-command-line", ...
	Value string // the value as written, without the "|" and "!" prefixes
	// Negate ("!" prefix) inverts the test.
	Negate bool
	// Trigger ("|" prefix) makes the condition one of a group of which at
	// least one must hold, instead of one that must hold itself.
	Trigger bool
}

// String renders the condition as written.
func (c Condition) String() string {
	var b strings.Builder
	b.WriteString(c.Kind + " = \"")
	if c.Trigger {
		b.WriteByte('|')
	}
	if c.Negate {
		b.WriteByte('!')
	}
	b.WriteString(c.Value + "\"")
	return b.String()
}

// Conditions is the list of conditions (or asserts) of a unit.
type Conditions []Condition

// conditionKinds lists the condition names and how their values are checked.
func conditionKinds() map[string]string {
	return map[string]string{
		"path-exists":              "path",
		"path-exists-glob":         "path",
		"path-is-directory":        "path",
		"path-is-symbolic-link":    "path",
		"path-is-mount-point":      "path",
		"path-is-read-write":       "path",
		"path-is-encrypted":        "path",
		"directory-not-empty":      "path",
		"file-not-empty":           "path",
		"file-is-executable":       "path",
		"needs-update":             "etc-or-var",
		"first-boot":               "bool",
		"ac-power":                 "bool",
		"kernel-command-line":      "string",
		"kernel-version":           "string",
		"virtualization":           "string",
		"host":                     "string",
		"architecture":             "string",
		"security":                 "string",
		"capability":               "capability",
		"environment":              "string",
		"user":                     "string",
		"group":                    "string",
		"control-group-controller": "string",
		"memory":                   "string",
		"cpus":                     "string",
		"os-release":               "string",
		"credential":               "string",
	}
}

func conditionKindNames() []string {
	kinds := conditionKinds()
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	return names
}

// ParseCondition parses one condition value with its "|" and "!" prefixes.
func ParseCondition(kind, value string) (Condition, error) {
	check, ok := conditionKinds()[kind]
	if !ok {
		return Condition{}, fmt.Errorf("unknown condition %q", kind)
	}
	c := Condition{Kind: kind}
	v := strings.TrimSpace(value)
	if rest, ok := strings.CutPrefix(v, "|"); ok {
		c.Trigger, v = true, strings.TrimSpace(rest)
	}
	if rest, ok := strings.CutPrefix(v, "!"); ok {
		c.Negate, v = true, strings.TrimSpace(rest)
	}
	c.Value = v
	if v == "" {
		return Condition{}, fmt.Errorf("empty value")
	}
	switch check {
	case "path":
		if !strings.HasPrefix(v, "/") {
			return Condition{}, fmt.Errorf("%q is not an absolute path", v)
		}
	case "etc-or-var":
		if v != "/etc" && v != "/var" {
			return Condition{}, fmt.Errorf("expected /etc or /var, got %q", v)
		}
	case "bool":
		switch v {
		case "true", "yes", "1", "on":
			c.Value = "true"
		case "false", "no", "0", "off":
			c.Value = "false"
		default:
			return Condition{}, fmt.Errorf("expected true or false, got %q", v)
		}
	case "capability":
		if _, _, err := ParseCapability(v); err != nil {
			return Condition{}, err
		}
	}
	return c, nil
}

// decodeValue reads a [unit.condition] table: each key a condition kind,
// each value a string, a boolean or an array of strings. An empty array
// removes the conditions of that kind set so far (in a drop-in: resets).
func (cs *Conditions) decodeValue(raw any, vc *valueCtx) error {
	table, ok := raw.(map[string]any)
	if !ok {
		return typeError("a table of conditions ([unit.condition] path-exists = \"/x\")", raw)
	}
	names := conditionKindNames()
	for _, kind := range sortedKeys(table) {
		if _, ok := conditionKinds()[kind]; !ok {
			vc.subProblem(kind, unknownKeyMessage(kind, names))
			continue
		}
		var values []string
		switch v := table[kind].(type) {
		case bool:
			values = []string{fmt.Sprint(v)}
		default:
			var err error
			values, err = stringOrList(v, false, "condition values")
			if err != nil {
				vc.subProblem(kind, err.Error())
				continue
			}
			if arr, isArr := v.([]any); isArr && len(arr) == 0 || v == "" {
				kept := (*cs)[:0]
				for _, c := range *cs {
					if c.Kind != kind {
						kept = append(kept, c)
					}
				}
				*cs = kept
				continue
			}
		}
		for _, value := range values {
			value, err := vc.expand(value)
			if err != nil {
				vc.subProblem(kind, err.Error())
				continue
			}
			c, err := ParseCondition(kind, value)
			if err != nil {
				vc.subProblem(kind, err.Error())
				continue
			}
			*cs = append(*cs, c)
		}
	}
	return nil
}
