package dbus

import (
	"fmt"
	"math"
	"net"
	"strings"

	"github.com/godbus/dbus/v5"
)

// The Scope interface (systemd's src/core/dbus-scope.c) and the Manager
// methods of scopes and of the unit-file verbs link, preset and revert.
// A scope's state comes from the units package's `show` strings
// (UnitProps.TypeProps) and its cgroup figures from UnitProps.Service.

// ErrNameScopeNotRunning refuses to abandon a scope that is not running.
const ErrNameScopeNotRunning = "org.freedesktop.systemd1.ScopeNotRunning"

// scopeProperties is org.freedesktop.systemd1.Scope.
func scopeProperties() []property {
	ps := []property{
		typeStr("Controller", ""),
		typeStr("Result", "success"),
		typeUsec("RuntimeMaxUSec", math.MaxUint64),
		constProp("RuntimeRandomizedExtraUSec", uint64(0)),
		typeUsec("TimeoutStopUSec", 90_000_000),
		constProp("OOMPolicy", "stop"),
		typeStr("KillMode", "control-group"),
		typeI32("KillSignal", 15),
		constProp("RestartKillSignal", int32(15)),
		typeI32("FinalKillSignal", 9),
		typeBool("SendSIGKILL", true),
		typeBool("SendSIGHUP", false),
		constProp("WatchdogSignal", int32(6)),
	}
	return append(ps, cgroupProperties(func(o *object) string { return o.service().ControlGroup }, (*object).service)...)
}

// scopeMethods are the Scope interface's methods.
func scopeMethods() []method {
	return append(processMethods(), method{name: "Abandon", write: true, fn: func(c *call, o *object) ([]any, error) {
		return nil, c.s.m.AbandonScope(o.unit.ID)
	}})
}

// scopeAndInstallMethods are the Manager's methods for scopes and for
// systemctl link, preset, preset-all, revert and add-wants/add-requires.
func scopeAndInstallMethods() []method {
	changed := func(c *call, ch []InstallChange, err error) ([]any, error) {
		if err != nil {
			return nil, err
		}
		c.s.post(Event{Kind: EventUnitFilesChanged})
		return []any{changeRows(ch)}, nil
	}
	preset := func(c *call, names []string, mode string) ([]any, error) {
		carries, ch, err := c.s.m.PresetUnitFiles(names, mode)
		if err != nil {
			return nil, err
		}
		c.s.post(Event{Kind: EventUnitFilesChanged})
		return []any{carries, changeRows(ch)}, nil
	}
	return []method{
		{name: "AbandonScope", in: "s", argNames: []string{"name"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			name := c.str(0)
			if !validUnitName(name) || unitType(name) != "scope" {
				return nil, Errorf(ErrNameInvalidArgs, "Unit %s is not a scope.", name)
			}
			return nil, c.s.m.AbandonScope(name)
		}},
		{name: "LinkUnitFiles", in: "asbb", out: "a(sss)", argNames: []string{"files", "runtime", "force", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				ch, err := c.s.m.LinkUnitFiles(c.strs(0), c.bool(1), c.bool(2))
				return changed(c, ch, err)
			}},
		{name: "PresetUnitFiles", in: "asbb", out: "ba(sss)", argNames: []string{"files", "runtime", "force", "carries_install_info", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) { return preset(c, c.strs(0), "full") }},
		{name: "PresetUnitFilesWithMode", in: "assbb", out: "ba(sss)", argNames: []string{"files", "mode", "runtime", "force", "carries_install_info", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) { return preset(c, c.strs(0), c.str(1)) }},
		{name: "PresetAllUnitFiles", in: "sbb", out: "a(sss)", argNames: []string{"mode", "runtime", "force", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				ch, err := c.s.m.PresetAllUnitFiles(c.str(0))
				return changed(c, ch, err)
			}},
		{name: "RevertUnitFiles", in: "as", out: "a(sss)", argNames: []string{"files", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				ch, err := c.s.m.RevertUnitFiles(c.strs(0))
				return changed(c, ch, err)
			}},
		{name: "AddDependencyUnitFiles", in: "asssbb", out: "a(sss)", argNames: []string{"files", "target", "type", "runtime", "force", "changes"}, write: true,
			fn: func(c *call, _ *object) ([]any, error) {
				ch, err := c.s.m.AddDependencyUnitFiles(c.strs(0), c.str(1), c.str(2), c.bool(3), c.bool(4))
				return changed(c, ch, err)
			}},
	}
}

// selfUnitPath is the caller's own unit (systemd's unit/self): systemd-run
// --scope reads its InvocationID there once the scope holds it.
const selfUnitPath = dbus.ObjectPath(unitPrefix + "self")

// callerUnitPath resolves unit/self: the unit of the calling process, from
// the peer's credentials on a direct connection or from the bus.
func (s *Server) callerUnitPath(c *call) (dbus.ObjectPath, error) {
	pid, err := callerPID(c)
	if err != nil {
		return "", Errorf(ErrNameNoUnitForPID, "Cannot find the caller's process: %v", err)
	}
	name, err := s.m.UnitByPID(pid)
	if err != nil {
		return "", err
	}
	return UnitPath(name), nil
}

func callerPID(c *call) (uint32, error) {
	if c.p.onBus {
		sender, _ := c.msg.Headers[dbus.FieldSender].Value().(string)
		reply, err := c.p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "GetConnectionUnixProcessID", busCallTimeout, sender)
		if err != nil {
			return 0, err
		}
		if pid, ok := reply.Body[0].(uint32); ok && len(reply.Body) == 1 {
			return pid, nil
		}
		return 0, fmt.Errorf("GetConnectionUnixProcessID answered %v", reply.Body)
	}
	uc, ok := c.p.c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a unix socket")
	}
	cred, err := peerCred(uc)
	if err != nil {
		return 0, err
	}
	return uint32(cred.Pid), nil
}

// resolveCallerPIDs turns PID 0 in a scope's PIDs into the caller's PID,
// as systemd does.
func resolveCallerPIDs(c *call, pids []int) error {
	for i, pid := range pids {
		if pid != 0 {
			continue
		}
		caller, err := callerPID(c)
		if err != nil || caller == 0 {
			return Errorf(ErrNameInvalidArgs, "PIDs: 0 names the caller, whose process is unknown (%v).", err)
		}
		pids[i] = int(caller)
	}
	return nil
}

// scopeStopRequests is a manager that asks scope controllers to stop
// their scopes (systemd's Scope.RequestStop) through the server while it
// is on the system bus: the controller is a bus name there. A client on
// the private socket has no bus name, so RequestStop travels only on the
// bus, whatever connection made the scope.
type scopeStopRequests interface {
	// RequestScopeStops installs send, which the manager calls on its
	// loop, until the returned function is called.
	RequestScopeStops(send func(unit, controller string) bool) (stop func())
	// ScopeControllerGone tells the manager a controller is not on the
	// bus: a stop that waits for it signals the scope at once.
	ScopeControllerGone(unit, controller string)
}

func (a *unitsAdapter) RequestScopeStops(send func(unit, controller string) bool) func() {
	var unset func()
	a.loop.Do(func() { unset = a.m.SetScopeStopRequester(send) })
	return func() {
		a.loop.Do(func() {
			if unset != nil {
				unset()
			}
		})
	}
}

func (a *unitsAdapter) ScopeControllerGone(unit, controller string) {
	a.loop.Do(func() { a.m.ScopeControllerGone(unit, controller) })
}

// offerScopeStops lets the manager send RequestStop on the bus connection
// p until the returned function is called (the connection ends).
func (s *Server) offerScopeStops(p *peerConn) (stop func()) {
	r, ok := s.m.(scopeStopRequests)
	if !ok {
		return func() {}
	}
	return r.RequestScopeStops(func(unit, controller string) bool {
		if !validBusName(controller) {
			// The bus would take a message with a bad destination for a
			// protocol error and disconnect us.
			return false
		}
		select {
		case <-p.closed:
			return false // the bus went away; the unset is on its way
		default:
		}
		msg := signalMessage(UnitPath(unit), "org.freedesktop.systemd1.Scope", "RequestStop")
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(controller)
		frame, err := encodeWire(msg)
		if err != nil || !p.trySend(frame) {
			return false
		}
		// A signal to a name nobody owns is dropped by the bus without a
		// word: ask whether the controller is still there (off the
		// loop), so that the stop need not wait out its timeout for it.
		go func() {
			reply, err := p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "NameHasOwner", busCallTimeout, controller)
			if err != nil || len(reply.Body) != 1 {
				return
			}
			if has, ok := reply.Body[0].(bool); ok && !has {
				r.ScopeControllerGone(unit, controller)
			}
		}()
		return true
	})
}

// validBusName checks a bus name as the D-Bus specification defines it: a
// unique name (":1.42") or a well-known one ("org.example.App"), at most
// 255 characters, two or more elements of [A-Za-z0-9_-] separated by dots,
// none empty, and in a well-known name none starting with a digit.
func validBusName(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	unique := name[0] == ':'
	if unique {
		name = name[1:]
	}
	elements := strings.Split(name, ".")
	if len(elements) < 2 {
		return false
	}
	for _, e := range elements {
		if e == "" || !unique && e[0] >= '0' && e[0] <= '9' {
			return false
		}
		for i := 0; i < len(e); i++ {
			c := e[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}
