package dbus

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// busConfig is a system-bus configuration for a private dbus-daemon that
// lets anyone own and call anything: access control is Vigil's own.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@SOCK@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// startBus runs a dbus-daemon on sock until stop is called.
func startBus(t *testing.T, dir, sock string) (stop func()) {
	t.Helper()
	cfg := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(busConfig, "@SOCK@", sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+cfg, "--nofork", "--nopidfile")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Kill()
		<-done
		os.Remove(sock)
	}
	t.Cleanup(stop)
	return stop
}

// serveOnNewBus starts a private system bus and h's server on it, and
// waits until Vigil owns its name there.
func serveOnNewBus(t *testing.T, h *harness) (sock string, stopBus func()) {
	t.Helper()
	busDir := t.TempDir()
	sock = filepath.Join(busDir, "system_bus_socket")
	stopBus = startBus(t, busDir, sock)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go h.srv.ServeSystemBus(ctx, sock)
	waitForOwner(t, sock, 10*time.Second)
	return sock, stopBus
}

// waitForOwner waits until org.freedesktop.systemd1 has an owner on the
// bus at sock. It asks with godbus, not busctl: the in-process harness's
// reaper is a subreaper that may collect a busctl child before exec.Cmd's
// Wait does ("waitid: no child processes").
func waitForOwner(t *testing.T, sock string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var has bool
		conn, err := dbus.Connect("unix:path=" + sock) // the bus may not listen yet
		if err == nil {
			err = conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has)
			conn.Close()
		}
		if err == nil && has {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear on the bus within %v: %v", busName, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// systemctlOnBus runs systemctl with no private socket, so that it uses the
// system bus (DBUS_SYSTEM_BUS_ADDRESS); prefix runs it as another user.
const systemctlBusScript = `set -e
mount -t tmpfs -o mode=0755 vigil-test /run/systemd
mkdir /run/systemd/system
exec "$@"`

func systemctlOnBus(t *testing.T, sock string, prefix []string, args ...string) (string, int) {
	t.Helper()
	all := append([]string{"-m", "--propagation", "private", "sh", "-c", systemctlBusScript, "sh"}, prefix...)
	all = append(all, "systemctl", "--no-pager", "--no-ask-password")
	all = append(all, args...)
	return run(t, 30*time.Second, []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + sock}, "unshare", all...)
}

func TestSystemBus(t *testing.T) {
	for _, tool := range []string{"dbus-daemon", "systemctl", "busctl", "setpriv"} {
		needTool(t, tool)
	}
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	busDir := t.TempDir()
	os.Chmod(busDir, 0o755)
	os.Chmod(filepath.Dir(busDir), 0o755)
	sock := filepath.Join(busDir, "system_bus_socket")
	stopBus := startBus(t, busDir, sock)
	newProcHarness(t, testUnits(), busEnv+"="+sock)
	waitForOwner(t, sock, 10*time.Second)

	out, code := run(t, 20*time.Second, nil, "busctl", "--address=unix:path="+sock, "get-property", busName,
		string(managerPath), ifaceManager, "Version")
	expectCode(t, "busctl get-property on the bus", out, code, 0)
	out, code = systemctlOnBus(t, sock, nil, "start", "once.service")
	expectCode(t, "systemctl start over the bus", out, code, 0)
	out, code = systemctlOnBus(t, sock, nil, "start", "fail.service")
	expectCode(t, "systemctl start fail.service over the bus", out, code, 1)
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	out, code = systemctlOnBus(t, sock, nobody, "is-active", "fail.service")
	expectCode(t, "is-active as nobody", out, code, 3)
	if strings.TrimSpace(out) != "failed" {
		t.Errorf("is-active as nobody printed %q", out)
	}
	out, code = systemctlOnBus(t, sock, nobody, "start", "once.service")
	if code == 0 || !strings.Contains(out, "Access denied") {
		t.Errorf("start as nobody: exit %d:\n%s", code, out)
	}

	// The bus restarts: Vigil comes back on it by itself.
	stopBus()
	startBus(t, busDir, sock)
	waitForOwner(t, sock, 15*time.Second)
	out, code = systemctlOnBus(t, sock, nil, "is-active", "fail.service")
	expectCode(t, "is-active after the bus restarted", out, code, 3)
}
