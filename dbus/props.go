package dbus

import (
	"math"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Interface names.
const (
	ifaceManager    = "org.freedesktop.systemd1.Manager"
	ifaceUnit       = "org.freedesktop.systemd1.Unit"
	ifaceService    = "org.freedesktop.systemd1.Service"
	ifaceSocket     = "org.freedesktop.systemd1.Socket"
	ifaceTarget     = "org.freedesktop.systemd1.Target"
	ifaceJob        = "org.freedesktop.systemd1.Job"
	ifaceProperties = "org.freedesktop.DBus.Properties"
	ifaceIntrospect = "org.freedesktop.DBus.Introspectable"
	ifacePeer       = "org.freedesktop.DBus.Peer"
	ifaceDBus       = "org.freedesktop.DBus"
)

// unknownU64 is systemd's "unset/unknown/infinity" for t properties.
const unknownU64 = math.MaxUint64

// property is one D-Bus property: its name, its exact D-Bus type and how to
// read it from an object. TestPropertyTypes checks that every getter returns
// exactly the declared type.
type property struct {
	name string
	sig  string
	get  func(o *object) any
}

// The D-Bus struct types of systemd's properties.
type (
	loadErrorT struct{ Name, Message string } // (ss)
	jobRefT    struct {                       // (uo)
		ID   uint32
		Path dbus.ObjectPath
	}
	unitRefT struct { // (so)
		Name string
		Path dbus.ObjectPath
	}
	conditionT struct { // (sbbsi)
		Type            string
		Trigger, Negate bool
		Param           string
		State           int32
	}
	execT struct { // (sasbttttuii)
		Path                                 string
		Argv                                 []string
		IgnoreFailure                        bool
		StartRT, StartMono, ExitRT, ExitMono uint64
		PID                                  uint32
		Code, Status                         int32
	}
	execExT struct { // (sasasttttuii)
		Path                                 string
		Argv                                 []string
		Flags                                []string
		StartRT, StartMono, ExitRT, ExitMono uint64
		PID                                  uint32
		Code, Status                         int32
	}
	exitStatusSetT struct{ Statuses, Signals []int32 } // (aiai)
	listenT        struct{ Type, Address string }      // (ss)
	stringPairT    struct{ A, B string }               // (ss)
	boolStringsT   struct {                            // (bas)
		Allow bool
		List  []string
	}
	boolStringT struct { // (bs)
		Ignore bool
		Value  string
	}
)

func usec(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMicro())
}

// monoUsec converts a wall-clock instant into CLOCK_MONOTONIC microseconds,
// which systemd's ...Monotonic properties carry.
func monoUsec(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	now := time.Duration(ts.Nano())
	m := now - time.Since(t)
	if m <= 0 {
		return 0
	}
	return uint64(m / time.Microsecond)
}

// durUsec gives a duration in µs; 0 (unset) means infinity.
func durUsec(d time.Duration) uint64 {
	if d <= 0 {
		return unknownU64
	}
	return uint64(d / time.Microsecond)
}

func optU64(p *uint64) uint64 {
	if p == nil {
		return unknownU64
	}
	return *p
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Property constructors.
func constProp(name string, v any) property {
	return property{name: name, sig: dbus.SignatureOf(v).String(), get: func(*object) any { return v }}
}

func unitProp(name, sig string, f func(u *UnitProps) any) property {
	return property{name: name, sig: sig, get: func(o *object) any { return f(o.unit) }}
}

func svcProp(name, sig string, f func(s *ServiceProps) any) property {
	return property{name: name, sig: sig, get: func(o *object) any { return f(o.service()) }}
}

func mgrProp(name, sig string, f func(i *ManagerInfo) any) property {
	return property{name: name, sig: sig, get: func(o *object) any { return f(o.info) }}
}

func depProp(name string) property {
	return unitProp(name, "as", func(u *UnitProps) any { return nonNil(u.Deps[name]) })
}

func unitTimeProps(name string, f func(u *UnitProps) time.Time) []property {
	return []property{
		unitProp(name, "t", func(u *UnitProps) any { return usec(f(u)) }),
		unitProp(name+"Monotonic", "t", func(u *UnitProps) any { return monoUsec(f(u)) }),
	}
}

// unitProperties is org.freedesktop.systemd1.Unit, in systemd's order.
func unitProperties() []property {
	var ps []property
	add := func(p ...property) { ps = append(ps, p...) }
	add(unitProp("Id", "s", func(u *UnitProps) any { return u.ID }),
		unitProp("Names", "as", func(u *UnitProps) any {
			if len(u.Names) == 0 {
				return []string{u.ID}
			}
			return u.Names
		}),
		constProp("Following", ""))
	for _, d := range []string{"Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds",
		"RequiredBy", "RequisiteOf", "WantedBy", "BoundBy", "UpheldBy", "ConsistsOf", "Conflicts",
		"ConflictedBy", "Before", "After", "OnSuccess", "OnSuccessOf", "OnFailure", "OnFailureOf",
		"Triggers", "TriggeredBy", "PropagatesReloadTo", "ReloadPropagatedFrom", "PropagatesStopTo",
		"StopPropagatedFrom", "JoinsNamespaceOf", "SliceOf", "RequiresMountsFor"} {
		add(depProp(d))
	}
	add(unitProp("Documentation", "as", func(u *UnitProps) any { return nonNil(u.Documentation) }),
		unitProp("Description", "s", func(u *UnitProps) any {
			if u.Description == "" {
				return u.ID
			}
			return u.Description
		}),
		constProp("AccessSELinuxContext", ""),
		unitProp("LoadState", "s", func(u *UnitProps) any { return u.LoadState }),
		unitProp("ActiveState", "s", func(u *UnitProps) any { return u.ActiveState }),
		unitProp("FreezerState", "s", func(u *UnitProps) any {
			if u.FreezerState == "" {
				return "running"
			}
			return u.FreezerState
		}),
		unitProp("SubState", "s", func(u *UnitProps) any { return u.SubState }),
		unitProp("FragmentPath", "s", func(u *UnitProps) any { return u.FragmentPath }),
		constProp("SourcePath", ""),
		unitProp("DropInPaths", "as", func(u *UnitProps) any { return nonNil(u.DropInPaths) }),
		unitProp("UnitFileState", "s", func(u *UnitProps) any { return u.UnitFileState }),
		unitProp("UnitFilePreset", "s", func(u *UnitProps) any { return u.UnitFilePreset }))
	add(unitTimeProps("StateChangeTimestamp", func(u *UnitProps) time.Time { return u.StateChange })...)
	add(unitTimeProps("InactiveExitTimestamp", func(u *UnitProps) time.Time { return u.InactiveExit })...)
	add(unitTimeProps("ActiveEnterTimestamp", func(u *UnitProps) time.Time { return u.ActiveEnter })...)
	add(unitTimeProps("ActiveExitTimestamp", func(u *UnitProps) time.Time { return u.ActiveExit })...)
	add(unitTimeProps("InactiveEnterTimestamp", func(u *UnitProps) time.Time { return u.InactiveEnter })...)
	add(unitProp("CanStart", "b", func(u *UnitProps) any { return u.CanStart }),
		unitProp("CanStop", "b", func(u *UnitProps) any { return u.CanStop }),
		unitProp("CanReload", "b", func(u *UnitProps) any { return u.CanReload }),
		unitProp("CanIsolate", "b", func(u *UnitProps) any { return u.CanIsolate }),
		canCleanProperty(),
		unitProp("CanFreeze", "b", func(u *UnitProps) any { return u.CanFreeze }),
		unitProp("Job", "(uo)", func(u *UnitProps) any {
			if u.JobID == 0 {
				return jobRefT{Path: "/"}
			}
			return jobRefT{ID: uint32(u.JobID), Path: JobPath(u.JobID)}
		}),
		constProp("StopWhenUnneeded", false),
		unitProp("RefuseManualStart", "b", func(u *UnitProps) any { return u.RefuseManualStart }),
		unitProp("RefuseManualStop", "b", func(u *UnitProps) any { return u.RefuseManualStop }),
		unitProp("AllowIsolate", "b", func(u *UnitProps) any { return u.CanIsolate }),
		constProp("DefaultDependencies", true),
		constProp("OnSuccessJobMode", "fail"),
		constProp("OnFailureJobMode", "replace"),
		constProp("IgnoreOnIsolate", false),
		unitProp("NeedDaemonReload", "b", func(u *UnitProps) any { return u.NeedDaemonReload }),
		constProp("Markers", []string{}),
		constProp("JobTimeoutUSec", uint64(unknownU64)),
		constProp("JobRunningTimeoutUSec", uint64(unknownU64)),
		constProp("JobTimeoutAction", "none"),
		constProp("JobTimeoutRebootArgument", ""),
		unitProp("ConditionResult", "b", func(u *UnitProps) any { return u.ConditionResult }),
		unitProp("AssertResult", "b", func(u *UnitProps) any { return u.ConditionResult }))
	add(unitTimeProps("ConditionTimestamp", func(u *UnitProps) time.Time { return u.ConditionTimestamp })...)
	add(unitTimeProps("AssertTimestamp", func(u *UnitProps) time.Time { return u.ConditionTimestamp })...)
	add(constProp("Conditions", []conditionT{}),
		constProp("Asserts", []conditionT{}),
		unitProp("LoadError", "(ss)", func(u *UnitProps) any {
			switch u.LoadState {
			case "loaded", "":
				return loadErrorT{}
			case "not-found":
				return loadErrorT{ErrNameNoSuchUnit, "Unit " + u.ID + " not found."}
			default:
				return loadErrorT{ErrNameLoadFailed, u.LoadError}
			}
		}),
		unitProp("Transient", "b", func(u *UnitProps) any { return u.Transient }),
		constProp("Perpetual", false),
		constProp("StartLimitIntervalUSec", uint64(10_000_000)),
		constProp("StartLimitBurst", uint32(5)),
		constProp("StartLimitAction", "none"),
		constProp("FailureAction", "none"),
		constProp("FailureActionExitStatus", int32(-1)),
		constProp("SuccessAction", "none"),
		constProp("SuccessActionExitStatus", int32(-1)),
		constProp("RebootArgument", ""),
		unitProp("InvocationID", "ay", func(u *UnitProps) any {
			if len(u.InvocationID) != 16 {
				return []byte{}
			}
			return u.InvocationID
		}),
		constProp("CollectMode", "inactive"),
		constProp("Refs", []string{}),
		constProp("ActivationDetails", []stringPairT{}))
	return ps
}

// cgroupProperties are the resource-control properties services, sockets,
// slices and scopes share; unknown figures are UINT64_MAX so that
// `systemctl status` leaves their lines out.
func cgroupProperties(cg func(o *object) string, s func(o *object) *ServiceProps) []property {
	u64 := func(name string, f func(s *ServiceProps) *uint64) property {
		return property{name: name, sig: "t", get: func(o *object) any { return optU64(f(s(o))) }}
	}
	return []property{
		{name: "Slice", sig: "s", get: func(o *object) any {
			if o.unit == nil {
				return ""
			}
			return o.unit.Slice
		}},
		{name: "ControlGroup", sig: "s", get: func(o *object) any { return cg(o) }},
		constProp("ControlGroupId", uint64(0)),
		u64("MemoryCurrent", func(s *ServiceProps) *uint64 { return s.MemoryCurrent }),
		constProp("MemoryAvailable", uint64(unknownU64)),
		u64("CPUUsageNSec", func(s *ServiceProps) *uint64 { return s.CPUUsageNSec }),
		constProp("EffectiveCPUs", []byte{}),
		constProp("EffectiveMemoryNodes", []byte{}),
		u64("TasksCurrent", func(s *ServiceProps) *uint64 { return s.TasksCurrent }),
		constProp("IPIngressBytes", uint64(unknownU64)),
		constProp("IPIngressPackets", uint64(unknownU64)),
		constProp("IPEgressBytes", uint64(unknownU64)),
		constProp("IPEgressPackets", uint64(unknownU64)),
		constProp("IOReadBytes", uint64(unknownU64)),
		constProp("IOReadOperations", uint64(unknownU64)),
		constProp("IOWriteBytes", uint64(unknownU64)),
		constProp("IOWriteOperations", uint64(unknownU64)),
		constProp("Delegate", false),
		constProp("CPUAccounting", false),
		constProp("CPUWeight", uint64(unknownU64)),
		constProp("CPUQuotaPerSecUSec", uint64(unknownU64)),
		constProp("IOAccounting", false),
		constProp("MemoryAccounting", true),
		constProp("DefaultMemoryLow", uint64(0)),
		constProp("DefaultMemoryMin", uint64(0)),
		constProp("MemoryMin", uint64(0)),
		constProp("MemoryLow", uint64(0)),
		constProp("MemoryHigh", uint64(unknownU64)),
		constProp("MemoryMax", uint64(unknownU64)),
		constProp("MemorySwapMax", uint64(unknownU64)),
		constProp("MemoryLimit", uint64(unknownU64)),
		constProp("DevicePolicy", "auto"),
		constProp("TasksAccounting", true),
		constProp("TasksMax", uint64(unknownU64)),
		constProp("IPAccounting", false),
	}
}

func execProps(name string, f func(s *ServiceProps) []ExecCommand) []property {
	return []property{
		svcProp(name, "a(sasbttttuii)", func(s *ServiceProps) any {
			out := []execT{}
			for _, c := range f(s) {
				out = append(out, execT{Path: c.Path, Argv: nonNil(c.Argv), IgnoreFailure: c.IgnoreFailure,
					StartRT: usec(c.Start), StartMono: monoUsec(c.Start), ExitRT: usec(c.Exit), ExitMono: monoUsec(c.Exit),
					PID: c.PID, Code: c.Code, Status: c.Status})
			}
			return out
		}),
		svcProp(name+"Ex", "a(sasasttttuii)", func(s *ServiceProps) any {
			out := []execExT{}
			for _, c := range f(s) {
				flags := []string{}
				if c.IgnoreFailure {
					flags = append(flags, "ignore-failure")
				}
				out = append(out, execExT{Path: c.Path, Argv: nonNil(c.Argv), Flags: flags,
					StartRT: usec(c.Start), StartMono: monoUsec(c.Start), ExitRT: usec(c.Exit), ExitMono: monoUsec(c.Exit),
					PID: c.PID, Code: c.Code, Status: c.Status})
			}
			return out
		}),
	}
}

// serviceProperties is org.freedesktop.systemd1.Service: what `systemctl
// status` and `show` read, with systemd's defaults where Vigil has no value.
func serviceProperties() []property {
	list := func(kind string) func(*ServiceProps) []ExecCommand {
		return func(s *ServiceProps) []ExecCommand { return s.Exec[kind] }
	}
	ps := []property{
		svcProp("Type", "s", func(s *ServiceProps) any { return orDefault(s.Type, "simple") }),
		constProp("ExitType", "main"),
		svcProp("Restart", "s", func(s *ServiceProps) any { return orDefault(s.Restart, "no") }),
		svcProp("PIDFile", "s", func(s *ServiceProps) any { return s.PIDFile }),
		svcProp("NotifyAccess", "s", func(s *ServiceProps) any { return orDefault(s.NotifyAccess, "none") }),
		svcProp("RestartUSec", "t", func(s *ServiceProps) any { return uint64(s.RestartDelay / time.Microsecond) }),
		svcProp("TimeoutStartUSec", "t", func(s *ServiceProps) any { return durUsec(s.TimeoutStart) }),
		svcProp("TimeoutStopUSec", "t", func(s *ServiceProps) any { return durUsec(s.TimeoutStop) }),
		constProp("TimeoutAbortUSec", uint64(unknownU64)),
		constProp("RuntimeMaxUSec", uint64(unknownU64)),
		constProp("WatchdogUSec", uint64(0)),
		constProp("WatchdogTimestamp", uint64(0)),
		constProp("WatchdogTimestampMonotonic", uint64(0)),
		constProp("RootDirectoryStartOnly", false),
		svcProp("RemainAfterExit", "b", func(s *ServiceProps) any { return s.RemainAfterExit }),
		constProp("GuessMainPID", true),
		constProp("RestartPreventExitStatus", exitStatusSetT{[]int32{}, []int32{}}),
		constProp("RestartForceExitStatus", exitStatusSetT{[]int32{}, []int32{}}),
		constProp("SuccessExitStatus", exitStatusSetT{[]int32{}, []int32{}}),
		svcProp("MainPID", "u", func(s *ServiceProps) any { return s.MainPID }),
		svcProp("ControlPID", "u", func(s *ServiceProps) any { return s.ControlPID }),
		constProp("BusName", ""),
		constProp("FileDescriptorStoreMax", uint32(0)),
		constProp("NFileDescriptorStore", uint32(0)),
		svcProp("StatusText", "s", func(s *ServiceProps) any { return s.StatusText }),
		constProp("StatusErrno", int32(0)),
		svcProp("Result", "s", func(s *ServiceProps) any { return orDefault(s.Result, "success") }),
		svcProp("ReloadResult", "s", func(s *ServiceProps) any { return orDefault(s.ReloadResult, "success") }),
		cleanResultProperty(),
		constProp("UID", uint32(math.MaxUint32)),
		constProp("GID", uint32(math.MaxUint32)),
		svcProp("NRestarts", "u", func(s *ServiceProps) any { return s.NRestarts }),
		constProp("OOMPolicy", "stop"),
		svcProp("ExecMainStartTimestamp", "t", func(s *ServiceProps) any { return usec(s.ExecMainStart) }),
		svcProp("ExecMainStartTimestampMonotonic", "t", func(s *ServiceProps) any { return monoUsec(s.ExecMainStart) }),
		svcProp("ExecMainExitTimestamp", "t", func(s *ServiceProps) any { return usec(s.ExecMainExit) }),
		svcProp("ExecMainExitTimestampMonotonic", "t", func(s *ServiceProps) any { return monoUsec(s.ExecMainExit) }),
		svcProp("ExecMainPID", "u", func(s *ServiceProps) any { return s.ExecMainPID }),
		svcProp("ExecMainCode", "i", func(s *ServiceProps) any { return s.ExecMainCode }),
		svcProp("ExecMainStatus", "i", func(s *ServiceProps) any { return s.ExecMainStatus }),
	}
	ps = append(ps, execProps("ExecCondition", list("ExecCondition"))...)
	ps = append(ps, execProps("ExecStartPre", list("ExecStartPre"))...)
	ps = append(ps, execProps("ExecStart", func(s *ServiceProps) []ExecCommand { return s.ExecStart })...)
	ps = append(ps, execProps("ExecStartPost", list("ExecStartPost"))...)
	ps = append(ps, execProps("ExecReload", list("ExecReload"))...)
	ps = append(ps, execProps("ExecStop", list("ExecStop"))...)
	ps = append(ps, execProps("ExecStopPost", list("ExecStopPost"))...)
	ps = append(ps, cgroupProperties(func(o *object) string { return o.service().ControlGroup }, (*object).service)...)
	ps = append(ps,
		svcProp("Environment", "as", func(s *ServiceProps) any { return nonNil(s.Environment) }),
		constProp("UMask", uint32(0o022)),
		constProp("LimitNOFILE", uint64(524288)),
		constProp("LimitNOFILESoft", uint64(1024)),
		svcProp("WorkingDirectory", "s", func(s *ServiceProps) any { return s.WorkingDirectory }),
		constProp("RootDirectory", ""),
		constProp("OOMScoreAdjust", int32(0)),
		constProp("Nice", int32(0)),
		constProp("StandardInput", "null"),
		constProp("StandardOutput", "journal"),
		constProp("StandardError", "inherit"),
		constProp("TTYPath", ""),
		constProp("SyslogIdentifier", ""),
		constProp("LogNamespace", ""),
		svcProp("User", "s", func(s *ServiceProps) any { return s.User }),
		svcProp("Group", "s", func(s *ServiceProps) any { return s.Group }),
		constProp("DynamicUser", false),
		constProp("SupplementaryGroups", []string{}),
		constProp("PrivateTmp", false),
		constProp("PrivateNetwork", false),
		constProp("ProtectSystem", "no"),
		constProp("ProtectHome", "no"),
		constProp("NoNewPrivileges", false),
		constProp("SELinuxContext", boolStringT{}),
		constProp("SystemCallFilter", boolStringsT{List: []string{}}),
		constProp("RestrictAddressFamilies", boolStringsT{List: []string{}}),
		svcProp("KillMode", "s", func(s *ServiceProps) any { return orDefault(s.KillMode, "control-group") }),
		constProp("KillSignal", int32(15)),
		constProp("RestartKillSignal", int32(15)),
		constProp("FinalKillSignal", int32(9)),
		constProp("SendSIGKILL", true),
		constProp("SendSIGHUP", false),
		constProp("WatchdogSignal", int32(6)),
	)
	return append(ps, execDirectoryProperties()...)
}

// socketProperties is org.freedesktop.systemd1.Socket. Vigil has no socket
// units yet: these are systemd's values for an idle socket, correctly typed.
func socketProperties() []property {
	noSvc := func(*object) *ServiceProps { return &ServiceProps{} }
	ps := []property{
		constProp("BindIPv6Only", "default"),
		constProp("Backlog", uint32(4096)),
		constProp("TimeoutUSec", uint64(90_000_000)),
		constProp("SocketMode", uint32(0o666)),
		constProp("DirectoryMode", uint32(0o755)),
		constProp("Accept", false),
		constProp("FlushPending", false),
		constProp("Writable", false),
		constProp("KeepAlive", false),
		constProp("PassCredentials", false),
		constProp("PassSecurity", false),
		constProp("RemoveOnStop", false),
		constProp("Listen", []listenT{}),
		constProp("Symlinks", []string{}),
		constProp("Mark", int32(-1)),
		constProp("MaxConnections", uint32(64)),
		constProp("MaxConnectionsPerSource", uint32(64)),
		constProp("ReusePort", false),
		constProp("ControlPID", uint32(0)),
		constProp("Result", "success"),
		constProp("NConnections", uint32(0)),
		constProp("NAccepted", uint32(0)),
		constProp("NRefused", uint32(0)),
		constProp("FileDescriptorName", ""),
		constProp("SocketProtocol", int32(0)),
		constProp("TriggerLimitIntervalUSec", uint64(2_000_000)),
		constProp("TriggerLimitBurst", uint32(20)),
		constProp("UID", uint32(math.MaxUint32)),
		constProp("GID", uint32(math.MaxUint32)),
	}
	for _, n := range []string{"ExecStartPre", "ExecStartPost", "ExecStopPre", "ExecStopPost"} {
		ps = append(ps, execProps(n, func(s *ServiceProps) []ExecCommand { return s.Exec[n] })[0]) // dbus-socket.c has no Ex forms
	}
	ps = append(ps, execDirectoryProperties()...)
	return append(ps, cgroupProperties(func(*object) string { return "" }, noSvc)...)
}

// managerProperties is org.freedesktop.systemd1.Manager.
func managerProperties() []property {
	ts := func(name string, f func(i *ManagerInfo) time.Time) []property {
		return []property{
			mgrProp(name, "t", func(i *ManagerInfo) any { return usec(f(i)) }),
			mgrProp(name+"Monotonic", "t", func(i *ManagerInfo) any { return monoUsec(f(i)) }),
		}
	}
	zero := func(name string) []property {
		return []property{constProp(name, uint64(0)), constProp(name+"Monotonic", uint64(0))}
	}
	ps := []property{
		mgrProp("Version", "s", func(i *ManagerInfo) any { return i.Version }),
		constProp("Features", "-PAM -AUDIT -SELINUX -APPARMOR -SECCOMP -ACL default-hierarchy=unified"),
		mgrProp("Virtualization", "s", func(i *ManagerInfo) any {
			if i.Virtualization == "none" {
				return ""
			}
			return i.Virtualization
		}),
		constProp("Architecture", architecture()),
		constProp("Tainted", ""),
	}
	for _, n := range []string{"FirmwareTimestamp", "LoaderTimestamp", "KernelTimestamp", "InitRDTimestamp"} {
		ps = append(ps, zero(n)...)
	}
	ps = append(ps, ts("UserspaceTimestamp", func(i *ManagerInfo) time.Time { return i.UserspaceTimestamp })...)
	ps = append(ps, ts("FinishTimestamp", func(i *ManagerInfo) time.Time { return i.FinishTimestamp })...)
	for _, n := range []string{"SecurityStartTimestamp", "SecurityFinishTimestamp", "GeneratorsStartTimestamp",
		"GeneratorsFinishTimestamp", "UnitsLoadStartTimestamp", "UnitsLoadFinishTimestamp", "UnitsLoadTimestamp"} {
		ps = append(ps, zero(n)...)
	}
	ps = append(ps,
		constProp("LogLevel", "info"),
		constProp("LogTarget", "console"),
		mgrProp("NNames", "u", func(i *ManagerInfo) any { return i.NNames }),
		mgrProp("NFailedUnits", "u", func(i *ManagerInfo) any { return i.NFailedUnits }),
		mgrProp("NJobs", "u", func(i *ManagerInfo) any { return i.NJobs }),
		constProp("NInstalledJobs", uint32(0)),
		constProp("NFailedJobs", uint32(0)),
		mgrProp("Progress", "d", func(i *ManagerInfo) any {
			if i.FinishTimestamp.IsZero() {
				return float64(0)
			}
			return float64(1)
		}),
		mgrProp("Environment", "as", func(i *ManagerInfo) any { return nonNil(i.Environment) }),
		constProp("ConfirmSpawn", false),
		constProp("ShowStatus", true),
		mgrProp("UnitPath", "as", func(i *ManagerInfo) any { return nonNil(i.UnitPath) }),
		constProp("DefaultStandardOutput", "journal"),
		constProp("DefaultStandardError", "inherit"),
		constProp("WatchdogDevice", ""),
		constProp("WatchdogLastPingTimestamp", uint64(0)),
		constProp("WatchdogLastPingTimestampMonotonic", uint64(0)),
		constProp("RuntimeWatchdogUSec", uint64(0)),
		constProp("RuntimeWatchdogPreUSec", uint64(0)),
		constProp("RuntimeWatchdogPreGovernor", ""),
		constProp("RebootWatchdogUSec", uint64(600_000_000)),
		constProp("KExecWatchdogUSec", uint64(0)),
		constProp("ServiceWatchdogs", true),
		constProp("ControlGroup", ""),
		mgrProp("SystemState", "s", func(i *ManagerInfo) any { return orDefault(i.SystemState, "running") }),
		constProp("ExitCode", byte(0)),
		constProp("DefaultTimerAccuracyUSec", uint64(60_000_000)),
		mgrProp("DefaultTimeoutStartUSec", "t", func(i *ManagerInfo) any { return durUsec(i.DefaultTimeoutStart) }),
		mgrProp("DefaultTimeoutStopUSec", "t", func(i *ManagerInfo) any { return durUsec(i.DefaultTimeoutStop) }),
		constProp("DefaultTimeoutAbortUSec", uint64(unknownU64)),
		constProp("DefaultDeviceTimeoutUSec", uint64(90_000_000)),
		constProp("DefaultRestartUSec", uint64(100_000)),
		constProp("DefaultStartLimitIntervalUSec", uint64(10_000_000)),
		constProp("DefaultStartLimitBurst", uint32(5)),
		constProp("DefaultCPUAccounting", false),
		constProp("DefaultBlockIOAccounting", false),
		constProp("DefaultMemoryAccounting", true),
		constProp("DefaultTasksAccounting", true),
		constProp("DefaultLimitNOFILE", uint64(524288)),
		constProp("DefaultLimitNOFILESoft", uint64(1024)),
		constProp("DefaultTasksMax", uint64(unknownU64)),
		constProp("TimerSlackNSec", uint64(50_000)),
		constProp("DefaultOOMPolicy", "stop"),
		constProp("DefaultOOMScoreAdjust", int32(0)),
		constProp("CtrlAltDelBurstAction", "reboot-force"),
	)
	return ps
}

// jobProperties is org.freedesktop.systemd1.Job.
func jobProperties() []property {
	return []property{
		{name: "Id", sig: "u", get: func(o *object) any { return uint32(o.job.ID) }},
		{name: "Unit", sig: "(so)", get: func(o *object) any { return unitRefT{o.job.Unit, UnitPath(o.job.Unit)} }},
		{name: "JobType", sig: "s", get: func(o *object) any { return o.job.Type }},
		{name: "State", sig: "s", get: func(o *object) any { return o.job.State }},
		constProp("ActivationDetails", []stringPairT{}),
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// architecture is systemd's name for the machine's architecture.
func architecture() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	switch m := unix.ByteSliceToString(u.Machine[:]); m {
	case "x86_64":
		return "x86-64"
	case "aarch64":
		return "arm64"
	case "i386", "i486", "i586", "i686":
		return "x86"
	default:
		return m
	}
}
