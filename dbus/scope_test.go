package dbus

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"vigil/units/cgroup"
)

// cgroupEnv, in server mode, gives the manager that cgroup2 directory as
// its tree (scopes move processes into groups of it).
const cgroupEnv = "VIGIL_DBUS_TEST_CGROUP"

// testCgroupDir is a fresh group under the host's cgroup2 hierarchy,
// emptied and removed at the end (the test is skipped without one).
func testCgroupDir(t *testing.T) string {
	t.Helper()
	mount, err := cgroup.Mountpoint()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp(mount, "vigil-dbus-test-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() {
		tree, err := cgroup.Open(dir)
		if err == nil {
			tree.Kill("")
			for i := 0; i < 100; i++ {
				if p, _ := tree.Populated(""); !p {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		var dirs []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			syscall.Rmdir(dirs[i])
		}
	})
	return dir
}

// systemdRunScript is systemctlScript running systemd-run instead.
var systemdRunScript = strings.Replace(systemctlScript, "exec systemctl --no-pager", "exec systemd-run", 1)

func (h *procHarness) systemdRun(args ...string) (string, int) {
	h.t.Helper()
	all := append([]string{"-m", "--propagation", "private", "sh", "-c", systemdRunScript, "sh", h.sock}, args...)
	return run(h.t, 60*time.Second, nil, "unshare", all...)
}

// waitSystemctl runs systemctl until its exit code is want.
func (h *procHarness) waitSystemctl(want int, args ...string) string {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, code := h.systemctl(args...)
		if code == want {
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("systemctl %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSystemdRunScope runs the real systemd-run --scope as root over the
// private socket: it asks for a scope holding itself, waits for the job
// and execs the command, which must find itself in the scope's cgroup.
// systemctl then shows, stops and forgets a running scope.
func TestSystemdRunScope(t *testing.T) {
	needTool(t, "systemd-run")
	needTool(t, "systemctl")
	cg := testCgroupDir(t)
	h := newProcHarness(t, testUnits(), cgroupEnv+"="+cg)
	group := "/" + filepath.Base(cg) + "/system.slice/run-scope-a.scope"

	out, code := h.systemdRun("--scope", "--unit", "run-scope-a", "-p", "MemoryMax=64M", "/bin/sh", "-c", "cat /proc/self/cgroup; exit 7")
	if code != 7 || !strings.Contains(out, "run-scope-a.scope") || !strings.Contains(out, "0::"+group) {
		t.Fatalf("systemd-run --scope: exit %d, want 7, the unit and 0::%s in:\n%s", code, group, out)
	}
	// Its only process gone, the scope is collected.
	h.waitSystemctl(4, "status", "run-scope-a.scope")

	// PID 0 names the caller: here busctl, which the scope adopts (and
	// which then exits, ending the scope).
	if _, err := exec.LookPath("busctl"); err == nil {
		out, code = run(t, 20*time.Second, nil, "busctl", "--address=unix:path="+h.sock, "call", busName, string(managerPath),
			ifaceManager, "StartTransientUnit", "ssa(sv)a(sa(sv))", "run-zero.scope", "fail", "1", "PIDs", "au", "1", "0", "0")
		if code != 0 || !strings.Contains(out, "/org/freedesktop/systemd1/job/") {
			t.Errorf("StartTransientUnit with PID 0 from busctl: exit %d:\n%s", code, out)
		}
		h.waitSystemctl(4, "status", "run-zero.scope")
		if logs := h.logs.String(); !strings.Contains(logs, "run-zero.scope: Transient unit collected.") || strings.Contains(logs, "run-zero.scope: Failed") {
			t.Errorf("the scope of PID 0 did not run and end cleanly:\n%s", logs)
		}
	}

	// A long-running scope, with a random name as systemd-run picks it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", systemdRunScript, "sh", h.sock,
		"--scope", "-p", "TimeoutStopSec=10s", "--description", "Long scope", "/bin/sleep", "300")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var outBuf syncBuffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var unit string
	deadline := time.Now().Add(20 * time.Second)
	for unit == "" {
		out, _ := h.systemctl("list-units", "--type=scope", "--no-legend", "--plain")
		for _, f := range strings.Fields(out) {
			if strings.HasPrefix(f, "run-") && strings.HasSuffix(f, ".scope") {
				unit = f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running scope listed:\n%s\nsystemd-run said:\n%s", out, outBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out = h.waitSystemctl(0, "status", unit)
	for _, want := range []string{"Long scope", "active (running)", "transient", "/bin/sleep 300", "CGroup: /" + filepath.Base(cg) + "/system.slice/" + unit} {
		if !strings.Contains(out, want) {
			t.Errorf("status of the scope lacks %q:\n%s", want, out)
		}
	}
	out, code = h.systemctl("show", "-p", "Result,KillMode,TimeoutStopUSec,Transient", unit)
	expectCode(t, "show", out, code, 0)
	for _, want := range []string{"Result=success", "KillMode=control-group", "TimeoutStopUSec=10s", "Transient=yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("show of the scope lacks %q:\n%s", want, out)
		}
	}
	out, code = h.systemctl("stop", unit)
	expectCode(t, "stop "+unit, out, code, 0)
	select {
	case err := <-exited:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Errorf("the scope's sleep ended with %v, want killed by SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the scope's process outlived stop:\n%s", outBuf.String())
	}
	h.waitSystemctl(4, "status", unit)
}

// TestScopeOverGodbus checks StartTransientUnit for scopes: the PIDs are
// required, PIDFDs answer UnknownProperty (so newer clients fall back on
// PIDs), service settings are refused, and Abandon works on a running
// scope, here one without cgroups (the pidfd fallback).
func TestScopeOverGodbus(t *testing.T) {
	h := newHarness(t, testUnits())
	conn := godbusClient(t, h.sock)
	mgr := conn.Object(busName, managerPath)
	sleeper := exec.Command("/bin/sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill() })
	pid := uint32(sleeper.Process.Pid)
	aux := []auxT{}
	for _, tc := range []struct {
		props []propT
		want  string
	}{
		{[]propT{{"Description", dbus.MakeVariant("no pids")}}, ErrNameInvalidArgs},
		{[]propT{{"PIDFDs", dbus.MakeVariant([]int32{})}}, ErrNameUnknownProperty},
		{[]propT{{"PIDs", dbus.MakeVariant([]uint32{pid})}, {"ExecStart", dbus.MakeVariant([]execArgT{{"/bin/true", false, []string{"true"}}})}}, ErrNameInvalidArgs},
		// PID 0 is the caller: this test process, the manager itself.
		{[]propT{{"PIDs", dbus.MakeVariant([]uint32{0})}}, ErrNameInvalidArgs},
		{[]propT{{"PIDs", dbus.MakeVariant([]uint32{1 << 31})}}, ErrNameInvalidArgs},
		{[]propT{{"PIDs", dbus.MakeVariant("12")}}, ErrNameInvalidArgs},
	} {
		err := mgr.Call(ifaceManager+".StartTransientUnit", 0, "bad.scope", "fail", tc.props, aux).Err
		if got := dbusErrorName(err); got != tc.want {
			t.Errorf("StartTransientUnit(%v): %v, want %s", tc.props, err, tc.want)
		}
	}
	props := []propT{{"PIDs", dbus.MakeVariant([]uint32{pid})}, {"Description", dbus.MakeVariant("godbus scope")},
		{"KillSignal", dbus.MakeVariant(int32(syscall.SIGINT))}, {"Controller", dbus.MakeVariant(":1.42")}}
	if err := mgr.Call(ifaceManager+".StartTransientUnit", 0, "gd.scope", "fail", props, aux).Err; err != nil {
		t.Fatal(err)
	}
	obj := conn.Object(busName, UnitPath("gd.scope"))
	get := func(iface, prop string) any {
		t.Helper()
		v, err := obj.GetProperty(iface + "." + prop)
		if err != nil {
			t.Fatalf("%s.%s: %v", iface, prop, err)
		}
		return v.Value()
	}
	deadline := time.Now().Add(10 * time.Second)
	for get(ifaceUnit, "ActiveState") != "active" {
		if time.Now().After(deadline) {
			t.Fatalf("gd.scope never became active")
		}
		time.Sleep(20 * time.Millisecond)
	}
	const ifaceScope = "org.freedesktop.systemd1.Scope"
	if c := get(ifaceScope, "Controller"); c != ":1.42" {
		t.Errorf("Controller = %v", c)
	}
	if s := get(ifaceScope, "KillSignal"); s != int32(syscall.SIGINT) {
		t.Errorf("KillSignal = %v", s)
	}
	if err := obj.Call(ifaceScope+".Abandon", 0).Err; err != nil {
		t.Fatal(err)
	}
	if s := get(ifaceUnit, "SubState"); s != "abandoned" {
		t.Errorf("SubState after Abandon = %v", s)
	}
	if err := mgr.Call(ifaceManager+".AbandonScope", 0, "sleeper.service").Err; dbusErrorName(err) != ErrNameInvalidArgs {
		t.Errorf("AbandonScope of a service: %v", err)
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for get(ifaceUnit, "LoadState") != "not-found" {
		if time.Now().After(deadline) {
			t.Fatalf("gd.scope was not collected after its process ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := mgr.Call(ifaceManager+".AbandonScope", 0, "gd.scope").Err; dbusErrorName(err) != ErrNameNoSuchUnit {
		t.Errorf("AbandonScope of a collected scope: %v", err)
	}
}

// FuzzTransientScopeProperties feeds arbitrary StartTransientUnit bodies
// to the translation of a scope's properties: errors, never panics;
// whatever is accepted has PIDs (0 is the caller) and names only a
// scope's sections.
func FuzzTransientScopeProperties(f *testing.F) {
	seed := func(props []propT) {
		body := []any{"run-x.scope", "fail", props, []auxT{}}
		msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(managerPath),
			dbus.FieldMember:    dbus.MakeVariant("StartTransientUnit"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body}
		if b, err := encodeWire(msg); err == nil {
			f.Add(b)
		}
	}
	// What systemd-run --scope sends.
	seed([]propT{{"Description", dbus.MakeVariant("/bin/sh -c true")}, {"PIDs", dbus.MakeVariant([]uint32{4242})}})
	seed([]propT{{"PIDs", dbus.MakeVariant([]uint32{1, 2})}, {"Slice", dbus.MakeVariant("user.slice")},
		{"KillMode", dbus.MakeVariant("mixed")}, {"TimeoutStopUSec", dbus.MakeVariant(uint64(5_000_000))},
		{"SendSIGHUP", dbus.MakeVariant(true)}, {"After", dbus.MakeVariant([]string{"a.service"})}})
	seed([]propT{{"PIDFDs", dbus.MakeVariant([]int32{3})}})
	f.Fuzz(func(t *testing.T, frame []byte) {
		msg, err := decodeFrame(frame)
		if err != nil || len(msg.Body) != 4 {
			return
		}
		props, err := decodeAssignments(msg.Body[2])
		if err != nil {
			return
		}
		spec, err := transientSpec("run-x.scope", props)
		if err != nil {
			return
		}
		if len(spec.PIDs) == 0 {
			t.Fatalf("a scope without PIDs was accepted")
		}
		for _, pid := range spec.PIDs {
			if pid < 0 {
				t.Fatalf("PID %d accepted", pid)
			}
		}
		for _, s := range spec.Settings {
			switch s.Section {
			case "unit", "scope", "resources":
			default:
				t.Fatalf("section %q in a scope", s.Section)
			}
		}
	})
}
