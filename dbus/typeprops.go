package dbus

import (
	"math"
	"strconv"
	"strings"
)

// The type interfaces of path, mount, automount, swap and timer units
// read what the unit type reports in `show` form (UnitProps.TypeProps,
// strings by D-Bus property name; durations already in µs), typed as
// systemd's src/core/dbus-{path,mount,automount,swap,timer}.c declare
// them. A property the type does not report reads as systemd's default.

func typeStr(name, def string) property {
	return property{name: name, sig: "s", get: func(o *object) any {
		if v, ok := o.typeProp(name); ok {
			return v
		}
		return def
	}}
}

func typeBool(name string, def bool) property {
	return property{name: name, sig: "b", get: func(o *object) any {
		switch v, _ := o.typeProp(name); v {
		case "yes", "true", "1":
			return true
		case "no", "false", "0":
			return false
		}
		return def
	}}
}

// typeU32 reads a decimal number, or an octal one written with a leading 0
// (modes).
func typeU32(name string, def uint32) property {
	return property{name: name, sig: "u", get: func(o *object) any {
		v, _ := o.typeProp(name)
		base := 10
		if len(v) > 1 && v[0] == '0' {
			base = 8
		}
		if n, err := strconv.ParseUint(v, base, 32); err == nil {
			return uint32(n)
		}
		return def
	}}
}

func typeI32(name string, def int32) property {
	return property{name: name, sig: "i", get: func(o *object) any {
		v, _ := o.typeProp(name)
		if n, err := strconv.ParseInt(v, 10, 32); err == nil {
			return int32(n)
		}
		return def
	}}
}

// typeUsec reads µs ("infinity" is UINT64_MAX).
func typeUsec(name string, def uint64) property {
	return property{name: name, sig: "t", get: func(o *object) any {
		v, _ := o.typeProp(name)
		if v == "infinity" {
			return uint64(math.MaxUint64)
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n
		}
		return def
	}}
}

func (o *object) typeProp(name string) (string, bool) {
	if o.unit == nil || o.unit.TypeProps == nil {
		return "", false
	}
	v, ok := o.unit.TypeProps[name]
	return v, ok
}

// camelKind turns Vigil's "path-exists" into systemd's "PathExists".
func camelKind(k string) string {
	var b strings.Builder
	for _, part := range strings.Split(k, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// pathProperties is org.freedesktop.systemd1.Path.
func pathProperties() []property {
	return []property{
		typeStr("Unit", ""),
		{name: "Paths", sig: "a(ss)", get: func(o *object) any {
			v, _ := o.typeProp("Paths")
			out := []stringPairT{}
			for _, f := range strings.Fields(v) {
				if kind, p, ok := strings.Cut(f, "="); ok {
					out = append(out, stringPairT{camelKind(kind), p})
				}
			}
			return out
		}},
		typeBool("MakeDirectory", false),
		typeU32("DirectoryMode", 0o755),
		typeStr("Result", "success"),
		typeUsec("TriggerLimitIntervalUSec", 2_000_000),
		typeU32("TriggerLimitBurst", 200),
	}
}

// mountProperties is org.freedesktop.systemd1.Mount.
func mountProperties() []property {
	none := func(string) func(*ServiceProps) []ExecCommand {
		return func(*ServiceProps) []ExecCommand { return nil }
	}
	ps := []property{
		typeStr("Where", ""),
		typeStr("What", ""),
		typeStr("Options", ""),
		typeStr("Type", ""),
		typeUsec("TimeoutUSec", 90_000_000),
		typeU32("ControlPID", 0),
		typeU32("DirectoryMode", 0o755),
		typeBool("SloppyOptions", false),
		typeBool("LazyUnmount", false),
		typeBool("ForceUnmount", false),
		typeBool("ReadWriteOnly", false),
		typeStr("Result", "success"),
		constProp("UID", uint32(math.MaxUint32)),
		constProp("GID", uint32(math.MaxUint32)),
	}
	for _, n := range []string{"ExecMount", "ExecUnmount", "ExecRemount"} {
		ps = append(ps, execProps(n, none(n))[0])
	}
	ps = append(ps, cleanResultProperty())
	ps = append(ps, execDirectoryProperties()...)
	return append(ps, cgroupProperties(func(o *object) string { return o.service().ControlGroup }, (*object).service)...)
}

// automountProperties is org.freedesktop.systemd1.Automount.
func automountProperties() []property {
	return []property{
		typeStr("Where", ""),
		typeStr("ExtraOptions", ""),
		typeU32("DirectoryMode", 0o755),
		typeStr("Result", "success"),
		typeUsec("TimeoutIdleUSec", 0),
	}
}

// swapProperties is org.freedesktop.systemd1.Swap.
func swapProperties() []property {
	none := func(*ServiceProps) []ExecCommand { return nil }
	ps := []property{
		typeStr("What", ""),
		typeI32("Priority", -1),
		typeStr("Options", ""),
		typeUsec("TimeoutUSec", 90_000_000),
		typeU32("ControlPID", 0),
		typeStr("Result", "success"),
		constProp("UID", uint32(math.MaxUint32)),
		constProp("GID", uint32(math.MaxUint32)),
		execProps("ExecActivate", none)[0],
		execProps("ExecDeactivate", none)[0],
	}
	return append(ps, cgroupProperties(func(o *object) string { return o.service().ControlGroup }, (*object).service)...)
}

// timerCalendarT is one entry of TimersCalendar, a(sst).
type timerCalendarT struct {
	Base, Spec string
	Next       uint64
}

// timerMonotonicT is one entry of TimersMonotonic, a(stt).
type timerMonotonicT struct {
	Base        string
	Value, Next uint64
}

// timerProperties is org.freedesktop.systemd1.Timer.
func timerProperties() []property {
	return []property{
		typeStr("Unit", ""),
		constProp("TimersMonotonic", []timerMonotonicT{}),
		{name: "TimersCalendar", sig: "a(sst)", get: func(o *object) any {
			v, _ := o.typeProp("TimersCalendar")
			out := []timerCalendarT{}
			for _, spec := range strings.Split(v, "; ") {
				if spec = strings.TrimSpace(spec); spec != "" {
					out = append(out, timerCalendarT{Base: "OnCalendar", Spec: spec})
				}
			}
			return out
		}},
		typeBool("OnClockChange", false),
		typeBool("OnTimezoneChange", false),
		typeUsec("NextElapseUSecRealtime", 0),
		typeUsec("NextElapseUSecMonotonic", 0),
		typeUsec("LastTriggerUSec", 0),
		typeUsec("LastTriggerUSecMonotonic", 0),
		typeStr("Result", "success"),
		typeUsec("AccuracyUSec", 60_000_000),
		typeUsec("RandomizedDelayUSec", 0),
		typeBool("FixedRandomDelay", false),
		typeBool("Persistent", false),
		typeBool("WakeSystem", false),
		typeBool("RemainAfterElapse", true),
	}
}
