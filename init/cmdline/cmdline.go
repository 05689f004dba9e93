// Package cmdline owns the parsing of the kernel command line (/proc/cmdline)
// and the typed reading of the parameters Vigil acts on.
//
// Splitting follows systemd's proc_cmdline: words are separated by white
// space outside double quotes, and the double quotes themselves are removed
// (`a="b c"` is the word `a=b c`). A word is a flag when it has no '=';
// otherwise it is key=value, split at the first '='. Keys compare with '-'
// and '_' as equivalent, as systemd does (`systemd.log_level` is
// `systemd.log-level`). Repeated keys are kept in order: single-valued
// accessors take the last occurrence, list accessors take all of them.
//
// Words after a lone "--" are the kernel's arguments for init (they reach
// PID 1 as argv); they are kept, marked AfterSeparator, and the accessors
// read them too, because runlevel words such as "single" or "-b" are meant
// for init wherever they appear.
//
// Vigil boots from its initramfs without a switch_root, so "rd." parameters
// (rd.modules-load=) apply as well as their plain forms.
package cmdline

import (
	"fmt"
	"os"
	"strings"
)

// DefaultPath is where the running kernel exposes its command line.
const DefaultPath = "/proc/cmdline"

// Param is one word of the command line.
type Param struct {
	Key string
	// Value is the text after the first '='; empty for a flag.
	Value string
	// HasValue tells `key=` (empty value) from the flag `key`.
	HasValue bool
	// AfterSeparator is true for words after a lone "--".
	AfterSeparator bool
}

// Cmdline is a parsed kernel command line.
type Cmdline struct {
	Params []Param
}

// Read parses the command line stored at path (normally DefaultPath).
func Read(path string) (Cmdline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Cmdline{}, fmt.Errorf("read kernel command line %s: %w", path, err)
	}
	return Parse(string(data)), nil
}

// Parse splits a command line into parameters. It never fails: unbalanced
// quotes extend to the end of the line, as in the kernel.
func Parse(s string) Cmdline {
	var c Cmdline
	afterSeparator := false
	for _, word := range splitWords(s) {
		if word == "--" && !afterSeparator {
			afterSeparator = true
			continue
		}
		p := Param{AfterSeparator: afterSeparator}
		if k, v, ok := strings.Cut(word, "="); ok {
			p.Key, p.Value, p.HasValue = k, v, true
		} else {
			p.Key = word
		}
		c.Params = append(c.Params, p)
	}
	return c
}

// splitWords splits at white space outside double quotes and drops the
// quote characters. An empty quoted word ("") is kept as an empty word only
// when it stands alone, which is then skipped like the kernel skips it.
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && isSpace(ch):
			if inWord && cur.Len() > 0 {
				words = append(words, cur.String())
			}
			cur.Reset()
			inWord = false
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord && cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

func isSpace(ch byte) bool {
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f' || ch == 0
}

// KeyEqual compares two parameter keys the way systemd does: '-' and '_'
// are the same character.
func KeyEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if x != y {
			return false
		}
	}
	return true
}

func matchesAny(key string, keys []string) bool {
	for _, k := range keys {
		if KeyEqual(key, k) {
			return true
		}
	}
	return false
}

// Value returns the value of the last `key=value` among keys (any of the
// given spellings), and whether one was present.
func (c Cmdline) Value(keys ...string) (string, bool) {
	for i := len(c.Params) - 1; i >= 0; i-- {
		p := c.Params[i]
		if p.HasValue && matchesAny(p.Key, keys) {
			return p.Value, true
		}
	}
	return "", false
}

// Values returns the values of every `key=value` among keys, in order.
func (c Cmdline) Values(keys ...string) []string {
	var out []string
	for _, p := range c.Params {
		if p.HasValue && matchesAny(p.Key, keys) {
			out = append(out, p.Value)
		}
	}
	return out
}

// Flag reports whether any of keys appears as a bare word (no '=').
func (c Cmdline) Flag(keys ...string) bool {
	for _, p := range c.Params {
		if !p.HasValue && matchesAny(p.Key, keys) {
			return true
		}
	}
	return false
}

// Bool reads a boolean parameter: a bare flag is true, `key=value` is
// parsed like systemd's parse_boolean. The last occurrence wins; a value
// that is not a boolean is skipped. set is false when the parameter is absent.
func (c Cmdline) Bool(keys ...string) (value, set bool) {
	for i := len(c.Params) - 1; i >= 0; i-- {
		p := c.Params[i]
		if !matchesAny(p.Key, keys) {
			continue
		}
		if !p.HasValue {
			return true, true
		}
		if b, ok := ParseBool(p.Value); ok {
			return b, true
		}
	}
	return false, false
}

// ParseBool accepts the words systemd's parse_boolean accepts.
func ParseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}

// Well-known targets the command line can select.
const (
	EmergencyTarget  = "emergency.target"
	RescueTarget     = "rescue.target"
	MultiUserTarget  = "multi-user.target"
	GraphicalTarget  = "graphical.target"
	defaultUnitParam = "vigil.unit"
)

// runlevelTarget maps a SysV runlevel word (a flag) to its target, as
// systemd's rlmap does; "-b" is the historic "emergency boot".
func runlevelTarget(word string) (string, bool) {
	switch word {
	case "emergency", "-b":
		return EmergencyTarget, true
	case "rescue", "single", "-s", "s", "S", "1":
		return RescueTarget, true
	case "2", "3", "4":
		return MultiUserTarget, true
	case "5":
		return GraphicalTarget, true
	}
	return "", false
}

// Target returns the unit the command line asks to boot into, from
// vigil.unit=, systemd.unit= and the runlevel words (emergency, -b, rescue,
// single, s, S, 1..5). As in systemd, the last one on the line wins. ok is
// false when the command line names no target (boot default.target).
func (c Cmdline) Target() (unit string, ok bool) {
	for i := len(c.Params) - 1; i >= 0; i-- {
		p := c.Params[i]
		if p.HasValue {
			if matchesAny(p.Key, []string{defaultUnitParam, "systemd.unit"}) && p.Value != "" {
				return p.Value, true
			}
			continue
		}
		if t, found := runlevelTarget(p.Key); found {
			return t, true
		}
	}
	return "", false
}

// Emergency reports whether the command line boots into emergency.target.
func (c Cmdline) Emergency() bool {
	t, _ := c.Target()
	return t == EmergencyTarget
}

// Rescue reports whether the command line boots into rescue.target.
func (c Cmdline) Rescue() bool {
	t, _ := c.Target()
	return t == RescueTarget
}

// Wants returns the extra units from every vigil.wants= and systemd.wants=,
// in order.
func (c Cmdline) Wants() []string {
	var out []string
	for _, v := range c.Values("vigil.wants", "systemd.wants") {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// LogLevel returns vigil.log-level= (or systemd.log_level=), if given.
func (c Cmdline) LogLevel() (string, bool) {
	return c.Value("vigil.log-level", "systemd.log-level")
}

// ShowStatus returns the status-output mode: "yes", "no", "auto" or
// "error", from vigil.show-status= / systemd.show_status= (a bare flag is
// "yes"); without one, "quiet" means "auto". set is false when neither is given.
func (c Cmdline) ShowStatus() (mode string, set bool) {
	keys := []string{"vigil.show-status", "systemd.show-status"}
	for i := len(c.Params) - 1; i >= 0; i-- {
		p := c.Params[i]
		if !matchesAny(p.Key, keys) {
			continue
		}
		if !p.HasValue {
			return "yes", true
		}
		switch v := strings.ToLower(p.Value); v {
		case "auto", "error":
			return v, true
		default:
			if b, ok := ParseBool(v); ok {
				if b {
					return "yes", true
				}
				return "no", true
			}
		}
	}
	if c.Quiet() {
		return "auto", true
	}
	return "", false
}

// Quiet reports the kernel's "quiet" flag.
func (c Cmdline) Quiet() bool {
	return c.Flag("quiet")
}

// DebugShell reports vigil.debug-shell / systemd.debug_shell. The value may
// be a boolean or a tty (systemd.debug_shell=/dev/tty9); tty is empty when
// none was named.
func (c Cmdline) DebugShell() (enabled bool, tty string) {
	keys := []string{"vigil.debug-shell", "systemd.debug-shell"}
	for i := len(c.Params) - 1; i >= 0; i-- {
		p := c.Params[i]
		if !matchesAny(p.Key, keys) {
			continue
		}
		if !p.HasValue {
			return true, ""
		}
		if b, ok := ParseBool(p.Value); ok {
			return b, ""
		}
		if p.Value != "" {
			return true, p.Value
		}
	}
	return false, ""
}

// ModulesLoad returns the kernel modules named by every modules-load= and
// rd.modules-load= (comma-separated lists), in order, without empty names.
func (c Cmdline) ModulesLoad() []string {
	var out []string
	for _, v := range c.Values("modules-load", "rd.modules-load") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}
