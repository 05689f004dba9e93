package dbus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
}

func TestBusctl(t *testing.T) {
	needTool(t, "busctl")
	h := newProcHarness(t, testUnits())
	addr := "--address=unix:path=" + h.sock
	out, code := run(t, 20*time.Second, nil, "busctl", addr, "tree", "--list", busName)
	expectCode(t, "busctl tree", out, code, 0)
	for _, want := range []string{"/org/freedesktop/systemd1\n", "/org/freedesktop/systemd1/unit/once_2eservice\n", "/org/freedesktop/systemd1/unit/test_2etarget\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("busctl tree lacks %q:\n%s", want, out)
		}
	}
	out, code = run(t, 20*time.Second, nil, "busctl", addr, "introspect", busName, "/org/freedesktop/systemd1/unit/once_2eservice")
	expectCode(t, "busctl introspect", out, code, 0)
	for _, want := range []string{"org.freedesktop.systemd1.Service", `.ExecStart `, `a(sasbttttuii)`, `.ActiveState `, `"inactive"`} {
		if !strings.Contains(out, want) {
			t.Errorf("busctl introspect lacks %q:\n%s", want, out)
		}
	}
	out, code = run(t, 20*time.Second, nil, "busctl", addr, "get-property", busName, "/org/freedesktop/systemd1/unit/once_2eservice",
		ifaceService, "MainPID", "Result", "ExecMainCode")
	expectCode(t, "busctl get-property", out, code, 0)
	if out != "u 0\ns \"success\"\ni 0\n" {
		t.Errorf("busctl get-property printed %q", out)
	}
	out, code = run(t, 20*time.Second, nil, "busctl", addr, "get-property", busName, "/org/freedesktop/systemd1/unit/nope_2eservice",
		ifaceUnit, "LoadState", "LoadError")
	expectCode(t, "busctl get-property of an unknown unit", out, code, 0)
	if !strings.Contains(out, `s "not-found"`) || !strings.Contains(out, `(ss) "org.freedesktop.systemd1.NoSuchUnit"`) {
		t.Errorf("unknown unit's LoadState/LoadError: %q", out)
	}
}

func TestDBusSendPeer(t *testing.T) {
	needTool(t, "dbus-send")
	h := newProcHarness(t, testUnits())
	peer := "--peer=unix:path=" + h.sock
	out, code := run(t, 20*time.Second, nil, "dbus-send", peer, "--print-reply", "--dest="+busName,
		string(managerPath), ifaceManager+".StartUnit", "string:once.service", "string:replace")
	expectCode(t, "dbus-send StartUnit", out, code, 0)
	if !strings.Contains(out, `object path "/org/freedesktop/systemd1/job/`) {
		t.Errorf("StartUnit reply: %s", out)
	}
	out, code = run(t, 20*time.Second, nil, "dbus-send", peer, "--print-reply", "--dest="+busName,
		string(managerPath), ifacePeer+".Ping")
	expectCode(t, "dbus-send Ping", out, code, 0)
	out, code = run(t, 20*time.Second, nil, "dbus-send", peer, "--print-reply", "--dest="+busName,
		string(managerPath), ifaceManager+".NoSuchMethod")
	if code == 0 || !strings.Contains(out, ErrNameUnknownMethod) {
		t.Errorf("unknown method: exit %d, %s", code, out)
	}
	out, code = run(t, 20*time.Second, nil, "dbus-send", peer, "--print-reply", "--dest="+busName,
		string(managerPath), ifaceManager+".StartUnit", "int32:1")
	if code == 0 || !strings.Contains(out, ErrNameInvalidArgs) {
		t.Errorf("wrong signature: exit %d, %s", code, out)
	}
}

func TestGdbus(t *testing.T) {
	needTool(t, "gdbus")
	h := newProcHarness(t, testUnits())
	out, code := run(t, 20*time.Second, nil, "gdbus", "introspect", "--address", "unix:path="+h.sock,
		"--dest", busName, "--object-path", string(managerPath))
	expectCode(t, "gdbus introspect", out, code, 0)
	for _, want := range []string{"interface org.freedesktop.systemd1.Manager", "StartUnit(in  s name,", "readonly s Version = '", "JobRemoved(u id,", "node unit"} {
		if !strings.Contains(out, want) {
			t.Errorf("gdbus introspect lacks %q:\n%s", want, out)
		}
	}
	// gdbus call introspects first to learn the argument types.
	out, code = run(t, 20*time.Second, nil, "gdbus", "call", "--address", "unix:path="+h.sock,
		"--dest", busName, "--object-path", string(managerPath), "--method", ifaceManager+".GetUnitFileState", "once.service")
	expectCode(t, "gdbus call", out, code, 0)
	if strings.TrimSpace(out) != "('static',)" {
		t.Errorf("gdbus call GetUnitFileState printed %q", out)
	}
}

// TestNonRootReadsOnly runs dbus-send as nobody: reading works, changing
// state is refused with AccessDenied.
func TestNonRootReadsOnly(t *testing.T) {
	needTool(t, "dbus-send")
	needTool(t, "setpriv")
	h := newProcHarness(t, testUnits())
	// The socket is root's (0600) like systemd's; open it up for the test.
	if err := os.Chmod(h.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{h.dir, filepath.Dir(h.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	asNobody := func(args ...string) (string, int) {
		all := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "dbus-send", "--peer=unix:path=" + h.sock, "--print-reply", "--dest=" + busName}, args...)
		return run(t, 20*time.Second, nil, "setpriv", all...)
	}
	out, code := asNobody(string(managerPath), ifaceProperties+".Get", "string:"+ifaceManager, "string:Version")
	expectCode(t, "read as nobody", out, code, 0)
	out, code = asNobody(string(managerPath), ifaceManager+".StartUnit", "string:once.service", "string:replace")
	if code == 0 || !strings.Contains(out, ErrNameAccessDenied) {
		t.Errorf("StartUnit as nobody: exit %d, %s", code, out)
	}
}
