package dbus

import (
	"strings"

	"github.com/godbus/dbus/v5"
)

// Object paths of the systemd1 tree.
const (
	managerPath dbus.ObjectPath = "/org/freedesktop/systemd1"
	unitPrefix  string          = "/org/freedesktop/systemd1/unit/"
	jobPrefix   string          = "/org/freedesktop/systemd1/job/"
)

// EscapeBusLabel is systemd's bus_label_escape: every byte that is not an
// ASCII letter, or a digit past the first position, becomes _XX (lowercase
// hex). The empty string becomes "_".
func EscapeBusLabel(s string) string {
	if s == "" {
		return "_"
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9' && i > 0:
			b.WriteByte(c)
		default:
			b.WriteByte('_')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// UnescapeBusLabel reverses EscapeBusLabel; a "_" not followed by two hex
// digits is kept literally, as systemd does.
func UnescapeBusLabel(s string) string {
	if s == "_" {
		return ""
	}
	if !strings.Contains(s, "_") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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

// UnitPath is the object path of a unit.
func UnitPath(name string) dbus.ObjectPath {
	return dbus.ObjectPath(unitPrefix + EscapeBusLabel(name))
}

// JobPath is the object path of a job.
func JobPath(id uint64) dbus.ObjectPath {
	return dbus.ObjectPath(jobPrefix + uitoa(id))
}

func uitoa(v uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(buf[i:])
}

// validUnitName is a cheap syntactic check of a unit name: a non-empty
// prefix, a known suffix, printable ASCII and at most 255 bytes, as
// systemd's unit_name_is_valid requires.
func validUnitName(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return false
	}
	if !knownUnitType(name[dot+1:]) {
		return false
	}
	for i := 0; i < dot; i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(":-_.\\@", c) >= 0:
		default:
			return false
		}
	}
	at := strings.IndexByte(name, '@')
	return at != 0
}

func knownUnitType(t string) bool {
	switch t {
	case "service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope":
		return true
	}
	return false
}

// unitType is the suffix of a unit name ("service").
func unitType(name string) string {
	if dot := strings.LastIndexByte(name, '.'); dot >= 0 {
		return name[dot+1:]
	}
	return ""
}
