package dbus

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// TransientSetting is one key of a transient unit's file (Vigil's TOML
// names), as StartTransientUnit's properties translate into. Value is a
// string, bool, int64, []string or [][]string.
type TransientSetting struct {
	Section, Key string
	Value        any
}

// TransientSpec is a transient unit as a client asked for it.
type TransientSpec struct {
	Name     string
	Settings []TransientSetting
	// CollectMode is "inactive" or "inactive-or-failed".
	CollectMode string
	// AddRef: the caller holds a reference until it disconnects.
	AddRef bool
	// PIDs are the processes a scope adopts (0: the caller, until
	// startTransient resolves it); Controller the bus name its client
	// named (scopes only).
	PIDs       []int
	Controller string
}

// maxTransientProperties bounds what one StartTransientUnit may set.
const maxTransientProperties = 512

// propAssignment is one (sv) of a property list.
type propAssignment struct {
	Name  string
	Value any
}

// decodeAssignments reads an a(sv) argument as godbus decodes it.
func decodeAssignments(arg any) ([]propAssignment, error) {
	rows, ok := arg.([][]any)
	if !ok {
		if arg == nil {
			return nil, nil
		}
		return nil, Errorf(ErrNameInvalidArgs, "Properties must be a(sv).")
	}
	if len(rows) > maxTransientProperties {
		return nil, Errorf(ErrNameInvalidArgs, "Too many properties (%d, at most %d).", len(rows), maxTransientProperties)
	}
	out := make([]propAssignment, 0, len(rows))
	for _, r := range rows {
		if len(r) != 2 {
			return nil, Errorf(ErrNameInvalidArgs, "Properties must be a(sv).")
		}
		name, ok1 := r[0].(string)
		v, ok2 := r[1].(dbus.Variant)
		if !ok1 || !ok2 {
			return nil, Errorf(ErrNameInvalidArgs, "Properties must be a(sv).")
		}
		out = append(out, propAssignment{name, v.Value()})
	}
	return out, nil
}

func badProp(name, want string, v any) error {
	return Errorf(ErrNameInvalidArgs, "Property %s: expected %s, got %s.", name, want, dbus.SignatureOf(v).String())
}

// execCommands reads an a(sasb) ExecStart-like value into word lists for
// the unit file: "-" marks ignore-failure, "@" a separate argv[0], and
// "%" is doubled so that the words stay as sent (no specifiers).
func execCommands(name string, v any) ([][]string, error) {
	rows, ok := v.([][]any)
	if !ok {
		return nil, badProp(name, "a(sasb)", v)
	}
	var out [][]string
	for _, r := range rows {
		if len(r) != 3 {
			return nil, badProp(name, "a(sasb)", v)
		}
		// systemd's own clients send a(sasb) (path, argv, ignore-failure),
		// and a(sasas) for the Ex form (flags); a(sbas) is accepted too.
		path, ok1 := r[0].(string)
		var ignore, ok2, ok3 bool
		var argv []string
		switch x := r[1].(type) {
		case []string:
			argv, ok3 = x, true
			switch y := r[2].(type) {
			case bool:
				ignore, ok2 = y, true
			case []string:
				ok2 = true
				for _, flag := range y {
					switch flag {
					case "ignore-failure":
						ignore = true
					default:
						return nil, Errorf(ErrNameInvalidArgs, "%s: flag %q is not supported.", name, flag)
					}
				}
			}
		case bool:
			ignore, ok2 = x, true
			argv, ok3 = r[2].([]string)
		}
		if !ok1 || !ok2 || !ok3 {
			return nil, badProp(name, "a(sasb)", v)
		}
		if !strings.HasPrefix(path, "/") {
			return nil, Errorf(ErrNameInvalidArgs, "%s: path %q is not absolute.", name, path)
		}
		esc := func(s string) string { return strings.ReplaceAll(s, "%", "%%") }
		first := esc(path)
		if ignore {
			first = "-" + first
		}
		words := []string{first}
		switch {
		case len(argv) == 0:
		case argv[0] == path:
			for _, a := range argv[1:] {
				words = append(words, esc(a))
			}
		default:
			words[0] = "@" + words[0]
			for _, a := range argv {
				words = append(words, esc(a))
			}
		}
		out = append(out, words)
	}
	return out, nil
}

// resourceAssignment translates a systemd resource-control property into
// a [resources] key and its value as text (set-property's form). ok is
// false when name is not a resource property.
func resourceAssignment(name string, v any) (key, value string, ok bool, err error) {
	u64 := func() (uint64, error) {
		n, ok := v.(uint64)
		if !ok {
			return 0, badProp(name, "t", v)
		}
		return n, nil
	}
	size := func(k string) (string, string, bool, error) {
		n, err := u64()
		if err != nil {
			return "", "", true, err
		}
		if n == math.MaxUint64 {
			return k, "infinity", true, nil
		}
		return k, strconv.FormatUint(n, 10), true, nil
	}
	weight := func(k string) (string, string, bool, error) {
		n, err := u64()
		if err != nil {
			return "", "", true, err
		}
		if n == math.MaxUint64 {
			return k, "", true, nil // unset: the default weight
		}
		return k, strconv.FormatUint(n, 10), true, nil
	}
	switch name {
	case "MemoryMax", "MemoryLimit":
		return size("memory-max")
	case "MemoryHigh":
		return size("memory-high")
	case "MemoryLow":
		return size("memory-low")
	case "MemoryMin":
		return size("memory-min")
	case "MemorySwapMax":
		return size("memory-swap-max")
	case "TasksMax":
		return size("tasks-max")
	case "CPUWeight":
		return weight("cpu-weight")
	case "StartupCPUWeight":
		return weight("startup-cpu-weight")
	case "IOWeight":
		return weight("io-weight")
	case "CPUQuotaPerSecUSec":
		n, err := u64()
		if err != nil {
			return "", "", true, err
		}
		if n == math.MaxUint64 {
			return "cpu-quota", "", true, nil
		}
		return "cpu-quota", strconv.FormatFloat(float64(n)/10000, 'f', -1, 64) + "%", true, nil
	case "Slice":
		s, ok := v.(string)
		if !ok {
			return "", "", true, badProp(name, "s", v)
		}
		return "slice", s, true, nil
	case "Delegate":
		b, ok := v.(bool)
		if !ok {
			return "", "", true, badProp(name, "b", v)
		}
		return "delegate", strconv.FormatBool(b), true, nil
	case "MemoryAccounting", "TasksAccounting", "CPUAccounting", "IOAccounting", "BlockIOAccounting", "IPAccounting":
		// Accounting is always on where Vigil has a cgroup.
		if _, ok := v.(bool); !ok {
			return "", "", true, badProp(name, "b", v)
		}
		return "", "", true, nil
	}
	return "", "", false, nil
}

// resourceValue gives a [resources] value its TOML type.
func resourceValue(key, text string) any {
	switch key {
	case "cpu-weight", "startup-cpu-weight", "io-weight":
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n
		}
	case "delegate":
		return text == "true"
	}
	return text
}

// usecDuration renders a t property in µs as a duration for the unit file.
func usecDuration(name string, v any) (string, error) {
	n, ok := v.(uint64)
	if !ok {
		return "", badProp(name, "t", v)
	}
	if n == math.MaxUint64 {
		return "infinity", nil
	}
	return strconv.FormatUint(n, 10) + "us", nil
}

// scopeProperty reports whether a scope takes the property (besides the
// resource ones): a scope runs no command, so the exec settings of a
// service are not among them.
func scopeProperty(name string) bool {
	switch name {
	case "Description", "Documentation", "AddRef", "CollectMode", "PIDs", "PIDFDs", "Controller",
		"KillMode", "KillSignal", "FinalKillSignal", "SendSIGHUP", "SendSIGKILL", "TimeoutStopUSec", "RuntimeMaxUSec",
		"DefaultDependencies", "Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "Conflicts",
		"After", "Before", "OnFailure", "OnSuccess":
		return true
	}
	return false
}

// kebabKey turns systemd's "BindsTo" into Vigil's "binds-to".
func kebabKey(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// transientSpec translates StartTransientUnit's properties into a unit
// (a service, or a scope for systemd-run --scope). Unknown properties are
// refused by name, as systemd does.
func transientSpec(name string, props []propAssignment) (TransientSpec, error) {
	spec := TransientSpec{Name: name}
	isScope := unitType(name) == "scope"
	// Kill and stop settings live in the type's own section.
	killSection := "service"
	if isScope {
		killSection = "scope"
	}
	set := func(section, key string, v any) {
		for i := range spec.Settings {
			if spec.Settings[i].Section == section && spec.Settings[i].Key == key {
				spec.Settings[i].Value = v
				return
			}
		}
		spec.Settings = append(spec.Settings, TransientSetting{section, key, v})
	}
	lookup := func(section, key string) any {
		for _, st := range spec.Settings {
			if st.Section == section && st.Key == key {
				return st.Value
			}
		}
		return nil
	}
	str := func(p propAssignment, section, key string) error {
		s, ok := p.Value.(string)
		if !ok {
			return badProp(p.Name, "s", p.Value)
		}
		set(section, key, strings.ReplaceAll(s, "%", "%%"))
		return nil
	}
	boolean := func(p propAssignment, section, key string) error {
		b, ok := p.Value.(bool)
		if !ok {
			return badProp(p.Name, "b", p.Value)
		}
		set(section, key, b)
		return nil
	}
	strs := func(p propAssignment, section, key string) error {
		l, ok := p.Value.([]string)
		if !ok {
			return badProp(p.Name, "as", p.Value)
		}
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = strings.ReplaceAll(s, "%", "%%")
		}
		set(section, key, out)
		return nil
	}
	seen := map[string]bool{}
	var env []string
	for _, p := range props {
		// As in systemd, a property given again overrides the earlier
		// value: systemd-run sends its own Description before the -p ones.
		seen[p.Name] = true
		if isScope && !scopeProperty(p.Name) {
			if _, _, isResource, _ := resourceAssignment(p.Name, p.Value); !isResource {
				return spec, Errorf(ErrNameInvalidArgs, "Cannot set property %s, or unknown property.", p.Name)
			}
		}
		var err error
		switch p.Name {
		case "Description":
			err = str(p, "unit", "description")
		case "Documentation":
			err = strs(p, "unit", "documentation")
		case "Type":
			err = str(p, "service", "type")
		case "RemainAfterExit":
			err = boolean(p, "service", "remain-after-exit")
		case "Restart":
			err = str(p, "service", "restart")
		case "ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecStopPost", "ExecReload", "ExecCondition",
			"ExecStartEx", "ExecStartPreEx", "ExecStartPostEx", "ExecStopEx", "ExecStopPostEx", "ExecReloadEx", "ExecConditionEx":
			var cmds [][]string
			if cmds, err = execCommands(p.Name, p.Value); err == nil {
				key := "exec-" + strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(p.Name, "Exec"), "Ex"))
				key = strings.NewReplacer("startpre", "start-pre", "startpost", "start-post", "stoppost", "stop-post").Replace(key)
				// Commands accumulate over repeated properties, and an
				// empty list resets them, as systemd's unit files do.
				if prev, ok := lookup("service", key).([][]string); ok && len(cmds) > 0 {
					cmds = append(prev, cmds...)
				}
				set("service", key, cmds)
			}
		case "Environment":
			l, ok := p.Value.([]string)
			if !ok {
				err = badProp(p.Name, "as", p.Value)
				break
			}
			for _, e := range l {
				env = append(env, strings.ReplaceAll(e, "%", "%%"))
			}
		case "WorkingDirectory":
			err = str(p, "service", "working-directory")
		case "RootDirectory":
			err = str(p, "service", "root-directory")
		case "User":
			err = str(p, "service", "user")
		case "Group":
			err = str(p, "service", "group")
		case "SupplementaryGroups":
			err = strs(p, "service", "supplementary-groups")
		case "DynamicUser":
			err = boolean(p, "service", "dynamic-user")
		case "StandardInput":
			err = str(p, "service", "standard-input")
		case "StandardOutput":
			err = str(p, "service", "standard-output")
		case "StandardError":
			err = str(p, "service", "standard-error")
		case "TTYPath":
			err = str(p, "service", "tty-path")
		case "SyslogIdentifier":
			err = str(p, "service", "syslog-identifier")
		case "PrivateTmp":
			err = boolean(p, "service", "private-tmp")
		case "NoNewPrivileges":
			err = boolean(p, "service", "no-new-privileges")
		case "PIDFile":
			err = str(p, "service", "pid-file")
		case "KillMode":
			err = str(p, killSection, "kill-mode")
		case "SendSIGHUP":
			err = boolean(p, killSection, "send-sighup")
		case "SendSIGKILL":
			err = boolean(p, killSection, "send-sigkill")
		case "KillSignal", "FinalKillSignal":
			n, ok := p.Value.(int32)
			if !ok {
				err = badProp(p.Name, "i", p.Value)
				break
			}
			key := "kill-signal"
			if p.Name == "FinalKillSignal" {
				key = "final-kill-signal"
			}
			set(killSection, key, int64(n))
		case "PIDs":
			l, ok := p.Value.([]uint32)
			if !ok {
				err = badProp(p.Name, "au", p.Value)
				break
			}
			for _, pid := range l {
				// 0 is the caller, resolved by startTransient.
				if pid > math.MaxInt32 {
					err = Errorf(ErrNameInvalidArgs, "PIDs: %d is not a valid process ID.", pid)
					break
				}
				spec.PIDs = append(spec.PIDs, int(pid))
			}
		case "PIDFDs":
			// File descriptors are not passed on Vigil's connections:
			// UnknownProperty makes newer clients fall back on PIDs.
			err = Errorf(ErrNameUnknownProperty, "PIDFDs are not supported by Vigil; send PIDs.")
		case "Controller":
			c, ok := p.Value.(string)
			if !ok {
				err = badProp(p.Name, "s", p.Value)
				break
			}
			spec.Controller = c
		case "DefaultDependencies":
			err = boolean(p, "unit", "default-dependencies")
		case "Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "Conflicts", "After", "Before", "OnFailure", "OnSuccess":
			err = strs(p, "unit", kebabKey(p.Name))
		case "Nice":
			n, ok := p.Value.(int32)
			if !ok {
				err = badProp(p.Name, "i", p.Value)
				break
			}
			set("service", "nice", int64(n))
		case "TimeoutStartUSec", "TimeoutStopUSec", "RuntimeMaxUSec", "RestartUSec", "TimeoutUSec":
			var d string
			if d, err = usecDuration(p.Name, p.Value); err == nil {
				key := map[string]string{"TimeoutStartUSec": "timeout-start", "TimeoutStopUSec": "timeout-stop",
					"RuntimeMaxUSec": "runtime-max", "RestartUSec": "restart-sec", "TimeoutUSec": "timeout-sec"}[p.Name]
				set(killSection, key, d)
			}
		case "AddRef":
			b, ok := p.Value.(bool)
			if !ok {
				err = badProp(p.Name, "b", p.Value)
			}
			spec.AddRef = b
		case "CollectMode":
			s, ok := p.Value.(string)
			if !ok || s != "inactive" && s != "inactive-or-failed" {
				err = Errorf(ErrNameInvalidArgs, "CollectMode must be inactive or inactive-or-failed.")
			}
			spec.CollectMode = s
		default:
			key, value, isResource, rerr := resourceAssignment(p.Name, p.Value)
			switch {
			case rerr != nil:
				err = rerr
			case !isResource:
				err = Errorf(ErrNameInvalidArgs, "Cannot set property %s, or unknown property.", p.Name)
			case key != "" && value != "":
				set("resources", key, resourceValue(key, value))
			}
		}
		if err != nil {
			return spec, err
		}
	}
	if len(env) > 0 {
		set("service", "environment", env)
	}
	switch {
	case isScope && len(spec.PIDs) == 0:
		return spec, Errorf(ErrNameInvalidArgs, "Scope %s has no PIDs: a scope holds processes that already run.", name)
	case !isScope && !seen["ExecStart"] && !seen["ExecStartEx"]:
		return spec, Errorf(ErrNameInvalidArgs, "Service %s has no ExecStart= setting, which is only allowed for RemainAfterExit=yes services.", name)
	case !isScope && (seen["PIDs"] || seen["Controller"]):
		return spec, Errorf(ErrNameInvalidArgs, "Cannot set property PIDs or Controller of a service: only scopes adopt processes.")
	}
	if !seen["Description"] {
		set("unit", "description", name)
	}
	return spec, nil
}

// setPropertyAssignments translates SetUnitProperties' properties into
// set-property's KEY=VALUE list ([resources] keys only).
func setPropertyAssignments(props []propAssignment) ([]string, error) {
	var out []string
	for _, p := range props {
		key, value, ok, err := resourceAssignment(p.Name, p.Value)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, Errorf(ErrNameInvalidArgs, "Cannot set property %s, or unknown property.", p.Name)
		}
		if key != "" {
			out = append(out, key+"="+value)
		}
	}
	return out, nil
}

// validateTransientName checks StartTransientUnit's name argument.
func validateTransientName(name string) error {
	if !validUnitName(name) {
		return Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
	}
	switch unitType(name) {
	case "service", "scope":
		return nil
	}
	return Errorf(ErrNameNotSupported, "Transient %s units are not supported by Vigil, only services and scopes.", unitType(name))
}

func (s TransientSpec) String() string {
	return fmt.Sprintf("%s (%d settings)", s.Name, len(s.Settings))
}
