package dbus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestScopeControllerForgottenWhenGone: a godbus client on a private
// system bus makes scopes with itself as their Controller, by its unique
// name and by a well-known name it owns, and disconnects. Vigil forgets
// both controllers (Controller reads empty), as systemd does when the
// name leaves the bus. A stop then asks nobody: a second client that has
// taken the well-known name since gets no RequestStop, and the scopes'
// processes get the kill signal at once, though timeout-stop is ten
// minutes.
func TestScopeControllerForgottenWhenGone(t *testing.T) {
	needTool(t, "dbus-daemon")
	h := newHarness(t, testUnits())
	sock, _ := serveOnNewBus(t, h)

	const wellKnown = "org.example.VigilScopeController"
	client, err := dbus.Connect("unix:path=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	unique := client.Names()[0]
	if reply, err := client.RequestName(wellKnown, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName %s: %v %v", wellKnown, reply, err)
	}

	// watcher is another client: it reads properties, stops the scopes
	// and, later, takes the well-known name.
	watcher, err := dbus.Connect("unix:path=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Close() })

	// scope starts a shell that notes a SIGTERM in a file, and makes it a
	// scope with the given controller, made by the client.
	scope := func(name, controller string) (termFile string) {
		t.Helper()
		termFile = filepath.Join(t.TempDir(), "term")
		sh := exec.Command("/bin/sh", "-c", `trap 'echo TERM > "$0"; exit 0' TERM; : > "$0.ready"; while :; do sleep 0.1; done`, termFile)
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
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
			{"TimeoutStopUSec", dbus.MakeVariant(uint64((10 * time.Minute) / time.Microsecond))}}
		if err := client.Object(busName, managerPath).Call(ifaceManager+".StartTransientUnit", 0, name, "fail", props, []auxT{}).Err; err != nil {
			t.Fatal(err)
		}
		waitProp(t, watcher, name, ifaceUnit, "ActiveState", "active", 10*time.Second)
		if got := getProp(t, watcher, name, "org.freedesktop.systemd1.Scope", "Controller"); got != controller {
			t.Fatalf("%s Controller = %v, want %s", name, got, controller)
		}
		return termFile
	}
	termUnique := scope("by-unique.scope", unique)
	termWellKnown := scope("by-name.scope", wellKnown)

	// The controller leaves the bus: both scopes forget it, and go on.
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"by-unique.scope", "by-name.scope"} {
		waitProp(t, watcher, name, "org.freedesktop.systemd1.Scope", "Controller", "", 20*time.Second)
		if got := getProp(t, watcher, name, ifaceUnit, "ActiveState"); got != "active" {
			t.Errorf("%s is %v after its controller left, want active", name, got)
		}
	}

	// The well-known name has a new owner, who must not be asked.
	if reply, err := watcher.RequestName(wellKnown, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName %s by the second client: %v %v", wellKnown, reply, err)
	}
	signals := make(chan *dbus.Signal, 16)
	watcher.Signal(signals)

	for name, term := range map[string]string{"by-unique.scope": termUnique, "by-name.scope": termWellKnown} {
		if err := watcher.Object(busName, managerPath).Call(ifaceManager+".StopUnit", 0, name, "replace").Err; err != nil {
			t.Fatal(err)
		}
		// Promptly signalled: a stop waiting for a controller would sit
		// out timeout-stop (ten minutes).
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(term); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no kill signal within 20 s of the stop; its forgotten controller was waited for", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		waitGone(t, watcher, name, 20*time.Second)
	}
	for {
		select {
		case sig := <-signals:
			if strings.HasSuffix(sig.Name, ".RequestStop") {
				t.Errorf("RequestStop for %s reached the name's new owner; the controller that left was not forgotten", sig.Path)
			}
			continue
		default:
		}
		break
	}
	h.logMu.Lock()
	log := h.logBuf.String()
	h.logMu.Unlock()
	if strings.Contains(log, "Asked the scope's controller") {
		t.Errorf("Vigil asked a controller that had left to stop a scope:\n%s", log)
	}
}

// TestScopeControllerForgottenWhenBusGoes: when the system bus goes away,
// the controllers Vigil watched on it are forgotten (a bus started again
// numbers its clients afresh); the scope stays active. Read over
// /run/systemd/private.
func TestScopeControllerForgottenWhenBusGoes(t *testing.T) {
	needTool(t, "dbus-daemon")
	h := newHarness(t, testUnits())
	sock, stopBus := serveOnNewBus(t, h)

	client, err := dbus.Connect("unix:path=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sh := exec.Command("/bin/sleep", "1000")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	props := []propT{{"PIDs", dbus.MakeVariant([]uint32{uint32(sh.Process.Pid)})},
		{"Controller", dbus.MakeVariant(client.Names()[0])}}
	if err := client.Object(busName, managerPath).Call(ifaceManager+".StartTransientUnit", 0, "bus-gone.scope", "fail", props, []auxT{}).Err; err != nil {
		t.Fatal(err)
	}
	private := godbusClient(t, h.sock)
	waitProp(t, private, "bus-gone.scope", ifaceUnit, "ActiveState", "active", 10*time.Second)
	if got := getProp(t, private, "bus-gone.scope", "org.freedesktop.systemd1.Scope", "Controller"); got != client.Names()[0] {
		t.Fatalf("Controller = %v, want %s", got, client.Names()[0])
	}
	stopBus()
	waitProp(t, private, "bus-gone.scope", "org.freedesktop.systemd1.Scope", "Controller", "", 20*time.Second)
	if got := getProp(t, private, "bus-gone.scope", ifaceUnit, "ActiveState"); got != "active" {
		t.Errorf("the scope is %v after the bus went, want active", got)
	}
}
