package dbus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestScopeRequestStopToController has a godbus client on a private
// system bus make a scope with itself as its Controller, then stops the
// scope three ways: the controller answers RequestStop by ending the
// scope's process itself (no signal from Vigil); the controller ignores it
// (Vigil kills after timeout-stop, result timeout, never SIGTERM); the
// controller named is not on the bus (Vigil signals at once).
func TestScopeRequestStopToController(t *testing.T) {
	needTool(t, "dbus-daemon")
	h := newHarness(t, testUnits())
	sock, _ := serveOnNewBus(t, h)

	conn, err := dbus.Connect("unix:path=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	me := conn.Names()[0]
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	mgr := conn.Object(busName, managerPath)

	// scope starts a shell that notes a SIGTERM in a file and goes on.
	scope := func(name, controller string, timeoutStop time.Duration) (pid int, termFile string) {
		t.Helper()
		termFile = filepath.Join(t.TempDir(), "term")
		// "$0.ready" says the trap is set: a SIGTERM before it would
		// kill the shell without a word.
		sh := exec.Command("/bin/sh", "-c", `trap 'echo TERM > "$0"' TERM; : > "$0.ready"; while :; do sleep 0.1; done`, termFile)
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sh.Process.Kill() })
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(termFile + ".ready"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the scope's shell did not start")
			}
		}
		props := []propT{{"PIDs", dbus.MakeVariant([]uint32{uint32(sh.Process.Pid)})},
			{"Controller", dbus.MakeVariant(controller)},
			{"TimeoutStopUSec", dbus.MakeVariant(uint64(timeoutStop / time.Microsecond))}}
		if err := mgr.Call(ifaceManager+".StartTransientUnit", 0, name, "fail", props, []auxT{}).Err; err != nil {
			t.Fatal(err)
		}
		waitProp(t, conn, name, ifaceUnit, "ActiveState", "active", 10*time.Second)
		return sh.Process.Pid, termFile
	}
	stop := func(name string) {
		t.Helper()
		if err := mgr.Call(ifaceManager+".StopUnit", 0, name, "replace").Err; err != nil {
			t.Fatal(err)
		}
	}
	requestStop := func(name string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case sig := <-signals:
				if sig.Name == "org.freedesktop.systemd1.Scope.RequestStop" && sig.Path == UnitPath(name) {
					return
				}
			case <-deadline:
				t.Fatalf("no RequestStop for %s within 10 s", name)
			}
		}
	}
	noTerm := func(file string) {
		t.Helper()
		if _, err := os.Stat(file); err == nil {
			t.Errorf("the scope's process got SIGTERM from Vigil, though its controller was asked to stop it")
		}
	}

	// 1. The controller ends the scope's process itself.
	pid, term := scope("asked.scope", me, time.Minute)
	stop("asked.scope")
	requestStop("asked.scope")
	waitProp(t, conn, "asked.scope", ifaceUnit, "SubState", "stop-sigterm", 10*time.Second)
	noTerm(term)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, conn, "asked.scope", 10*time.Second)
	noTerm(term)

	// 2. The controller does nothing: SIGKILL after timeout-stop.
	_, term = scope("ignored.scope", me, time.Second)
	stop("ignored.scope")
	requestStop("ignored.scope")
	waitProp(t, conn, "ignored.scope", ifaceUnit, "ActiveState", "failed", 20*time.Second)
	if r := getProp(t, conn, "ignored.scope", "org.freedesktop.systemd1.Scope", "Result"); r != "timeout" {
		t.Errorf("Result after the controller ignored RequestStop = %v, want timeout", r)
	}
	noTerm(term)

	// 3. A controller that is not on the bus: signalled at once, well
	// before timeout-stop.
	_, term = scope("orphan.scope", ":1.999999", 10*time.Minute)
	stop("orphan.scope")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(term); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scope of a controller that is gone was not signalled within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getProp(t *testing.T, conn *dbus.Conn, unit, iface, prop string) any {
	t.Helper()
	v, err := conn.Object(busName, UnitPath(unit)).GetProperty(iface + "." + prop)
	if err != nil {
		t.Fatalf("%s %s.%s: %v", unit, iface, prop, err)
	}
	return v.Value()
}

// waitProp waits until a unit's property has the value want.
func waitProp(t *testing.T, conn *dbus.Conn, unit, iface, prop string, want any, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := getProp(t, conn, unit, iface, prop)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s = %v after %v, want %v", unit, prop, got, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until a transient unit ended and was collected (or sits
// inactive).
func waitGone(t *testing.T, conn *dbus.Conn, unit string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		load := getProp(t, conn, unit, ifaceUnit, "LoadState")
		active := getProp(t, conn, unit, ifaceUnit, "ActiveState")
		if load == "not-found" || active == "inactive" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %v/%v after %v", unit, load, active, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestValidBusName(t *testing.T) {
	for name, want := range map[string]bool{
		":1.42": true, "org.freedesktop.login1": true, "a-b.c_d": true, ":1.999999": true,
		"": false, "nodots": false, ":1": false, "org..x": false, "org.1x": false, "org.x.": false,
		"org.x y": false, "org/x": false, strings.Repeat("a.", 128) + "b": false,
	} {
		if got := validBusName(name); got != want {
			t.Errorf("validBusName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzValidBusName: a controller name comes from a client; whatever is
// accepted is one the bus takes as a destination (checked with godbus's
// own header validation when it encodes the signal).
func FuzzValidBusName(f *testing.F) {
	for _, s := range []string{":1.42", "org.freedesktop.login1", "", "a", "a..b", ":1.x-y_z", "1.a", "a.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !validBusName(name) {
			return
		}
		if len(name) > 255 || !strings.Contains(name, ".") || strings.ContainsAny(name, " /\x00") {
			t.Fatalf("accepted %q", name)
		}
		msg := signalMessage(UnitPath("x.scope"), "org.freedesktop.systemd1.Scope", "RequestStop")
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(name)
		if _, err := encodeWire(msg); err != nil {
			t.Fatalf("accepted %q, which does not encode: %v", name, err)
		}
	})
}
