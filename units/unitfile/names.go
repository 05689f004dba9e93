package unitfile

import (
	"fmt"
	"path"
	"strings"
)

// UnitType is the kind of a unit, given by the suffix of its name.
type UnitType string

// The unit types Vigil knows, named after their file suffix.
const (
	TypeService   UnitType = "service"
	TypeSocket    UnitType = "socket"
	TypeTarget    UnitType = "target"
	TypeMount     UnitType = "mount"
	TypeAutomount UnitType = "automount"
	TypePath      UnitType = "path"
	TypeTimer     UnitType = "timer"
	TypeDevice    UnitType = "device"
	TypeSlice     UnitType = "slice"
	TypeScope     UnitType = "scope"
	TypeSwap      UnitType = "swap"
)

// UnitTypes lists every unit type in a stable order.
func UnitTypes() []UnitType {
	return []UnitType{TypeService, TypeSocket, TypeTarget, TypeMount, TypeAutomount,
		TypePath, TypeTimer, TypeDevice, TypeSlice, TypeScope, TypeSwap}
}

// Valid reports whether t is one of the known unit types.
func (t UnitType) Valid() bool {
	switch t {
	case TypeService, TypeSocket, TypeTarget, TypeMount, TypeAutomount,
		TypePath, TypeTimer, TypeDevice, TypeSlice, TypeScope, TypeSwap:
		return true
	}
	return false
}

// MaxNameLength is the longest valid unit name, as in systemd.
const MaxNameLength = 255

// Name is a parsed unit name such as "getty@tty1.service".
type Name struct {
	Prefix     string   // "getty": everything before '@' or the type suffix
	Instance   string   // "tty1": empty for plain units and templates
	Type       UnitType // "service"
	IsTemplate bool     // true for "getty@.service"
}

// String gives the unit name back in its canonical form.
func (n Name) String() string {
	switch {
	case n.IsTemplate:
		return n.Prefix + "@." + string(n.Type)
	case n.Instance != "":
		return n.Prefix + "@" + n.Instance + "." + string(n.Type)
	default:
		return n.Prefix + "." + string(n.Type)
	}
}

// IsInstance reports whether the name is an instance of a template.
func (n Name) IsInstance() bool { return n.Instance != "" }

// Template gives the template's name of an instance ("getty@.service" for
// "getty@tty1.service"), the name itself for a template, and "" for a unit
// that is neither.
func (n Name) Template() string {
	if !n.IsTemplate && n.Instance == "" {
		return ""
	}
	return n.Prefix + "@." + string(n.Type)
}

// WithInstance gives the name of the template's instance inst.
func (n Name) WithInstance(inst string) string {
	return n.Prefix + "@" + inst + "." + string(n.Type)
}

// DefaultSlice is the slice a unit of a cgroup-holding type sits in when
// it names none, as systemd's system manager chooses it: the instances of
// a template share "system-PREFIX.slice" (getty@tty1.service sits in
// system-getty.slice; a '-' in the prefix is escaped as \x2d so that it
// does not nest), everything else sits in system.slice.
func DefaultSlice(name string) string {
	n, err := ParseName(name)
	if err != nil || !n.IsInstance() {
		return "system.slice"
	}
	prefix := strings.ReplaceAll(n.Prefix, `\`, `\x5c`)
	return "system-" + strings.ReplaceAll(prefix, "-", `\x2d`) + ".slice"
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == ':' || c == '_' || c == '.' || c == '-' || c == '\\'
}

// ParseName splits and validates a unit name with systemd's rules: at most
// 255 characters from [A-Za-z0-9:_.\-@\\], a known type suffix, a non-empty
// prefix without '@', and for names with '@' either nothing (a template) or a
// valid instance between the first '@' and the suffix.
func ParseName(name string) (Name, error) {
	if name == "" {
		return Name{}, fmt.Errorf("invalid unit name: empty")
	}
	if len(name) > MaxNameLength {
		return Name{}, fmt.Errorf("invalid unit name %q: longer than %d characters", name, MaxNameLength)
	}
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return Name{}, fmt.Errorf("invalid unit name %q: no type suffix (like .service)", name)
	}
	typ := UnitType(name[dot+1:])
	if !typ.Valid() {
		return Name{}, fmt.Errorf("invalid unit name %q: unknown unit type %q", name, string(typ))
	}
	stem := name[:dot]
	for i := 0; i < len(stem); i++ {
		if c := stem[i]; !isNameChar(c) && c != '@' {
			return Name{}, fmt.Errorf("invalid unit name %q: character %q not allowed", name, c)
		}
	}
	n := Name{Type: typ, Prefix: stem}
	if at := strings.IndexByte(stem, '@'); at >= 0 {
		n.Prefix, n.Instance = stem[:at], stem[at+1:]
		n.IsTemplate = n.Instance == ""
	}
	if n.Prefix == "" {
		return Name{}, fmt.Errorf("invalid unit name %q: empty prefix", name)
	}
	return n, nil
}

// Escape escapes s as `systemd-escape` does: '/' becomes '-', a leading '.'
// and every byte outside [A-Za-z0-9:_.] becomes \xNN.
func Escape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, !isNameChar(c), c == '-', c == '\\':
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Unescape reverses Escape: '-' becomes '/' and \xNN the byte NN.
func Unescape(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-':
			b.WriteByte('/')
		case c == '\\':
			if i+3 >= len(s) || s[i+1] != 'x' {
				return "", fmt.Errorf("unescape %q: bad escape at offset %d", s, i)
			}
			hi, ok1 := unhex(s[i+2])
			lo, ok2 := unhex(s[i+3])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("unescape %q: bad escape at offset %d", s, i)
			}
			b.WriteByte(hi<<4 | lo)
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// EscapePath escapes a file system path as `systemd-escape --path` does:
// the path is cleaned, its outer slashes dropped, and "/" itself becomes "-".
// Paths with ".." components are refused, as systemd refuses them.
func EscapePath(p string) (string, error) {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("escape path %q: contains '..'", p)
		}
	}
	clean := strings.Trim(path.Clean("/"+p), "/")
	if clean == "" {
		return "-", nil
	}
	return Escape(clean), nil
}

// UnescapePath reverses EscapePath, giving an absolute path.
func UnescapePath(s string) (string, error) {
	if s == "-" {
		return "/", nil
	}
	u, err := Unescape(s)
	if err != nil {
		return "", err
	}
	return "/" + u, nil
}

// MountUnitName gives the name of the mount unit for mount point where:
// "/mnt/data" gives "mnt-data.mount".
func MountUnitName(where string) (string, error) {
	e, err := EscapePath(where)
	if err != nil {
		return "", err
	}
	return e + ".mount", nil
}

// DeviceUnitName gives the name of the device unit for a device node or
// sysfs path: "/dev/vdb" gives "dev-vdb.device".
func DeviceUnitName(devpath string) (string, error) {
	e, err := EscapePath(devpath)
	if err != nil {
		return "", err
	}
	return e + ".device", nil
}
