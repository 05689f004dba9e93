package dbus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"vigil/units"
)

// testExecDirectoryRoots puts the test manager's unit directories
// (runtime-directory and friends) below its own directory.
func testExecDirectoryRoots(dir string) units.ExecDirectoryRoots {
	r := filepath.Join(dir, "roots")
	return units.ExecDirectoryRoots{Runtime: filepath.Join(r, "run"), State: filepath.Join(r, "lib"),
		Cache: filepath.Join(r, "cache"), Logs: filepath.Join(r, "log"), Configuration: filepath.Join(r, "etc")}
}

const cleanUnit = `[service]
type = "oneshot"
remain-after-exit = true
state-directory = "cl"
cache-directory = "cl"
runtime-directory = "cl"
runtime-directory-preserve = "yes"
exec-start = ["/bin/sh", "-c", "touch $STATE_DIRECTORY/s $CACHE_DIRECTORY/c $RUNTIME_DIRECTORY/r"]
`

// TestSystemctlClean runs systemd's systemctl clean against Vigil: it
// fails clearly on an active unit, removes cache and runtime by default
// and what --what names, and shows CanClean. systemctl clean, like
// freeze, insists on the system bus (its unit waiter needs matches).
func TestSystemctlClean(t *testing.T) {
	for _, tool := range []string{"dbus-daemon", "systemctl", "busctl"} {
		needTool(t, tool)
	}
	busDir := t.TempDir()
	os.Chmod(busDir, 0o755)
	os.Chmod(filepath.Dir(busDir), 0o755)
	bus := filepath.Join(busDir, "system_bus_socket")
	startBus(t, busDir, bus)
	h := newProcHarness(t, map[string]string{"cl.service": cleanUnit}, busEnv+"="+bus)
	waitForOwner(t, bus, 10*time.Second)
	clean := func(args ...string) (string, int) {
		return systemctlOnBus(t, bus, nil, append([]string{"clean"}, args...)...)
	}
	roots := testExecDirectoryRoots(h.dir)
	state, cache, rt := filepath.Join(roots.State, "cl"), filepath.Join(roots.Cache, "cl"), filepath.Join(roots.Runtime, "cl")
	out, code := h.systemctl("start", "cl.service")
	expectCode(t, "start", out, code, 0)
	for _, p := range []string{state + "/s", cache + "/c", rt + "/r"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the unit did not write into its directory: %v", err)
		}
	}
	out, code = h.systemctl("show", "-p", "CanClean", "-p", "StateDirectory", "-p", "RuntimeDirectoryPreserve",
		"-p", "StateDirectoryMode", "-p", "LogsDirectory", "cl.service")
	expectCode(t, "show CanClean", out, code, 0)
	want := "CanClean=runtime state cache\nStateDirectoryMode=0755\nStateDirectory=cl\nLogsDirectory=\nRuntimeDirectoryPreserve=yes"
	if got := strings.TrimSpace(out); !sameLines(got, want) {
		t.Errorf("show:\n%s\nwant (in any order):\n%s", got, want)
	}
	out, code = clean("cl.service")
	expectCode(t, "clean of an active unit", out, code, 1)
	if !strings.Contains(out, "Unit is not inactive or has pending job") {
		t.Errorf("clean of an active unit said %q", out)
	}
	out, code = h.systemctl("stop", "cl.service")
	expectCode(t, "stop", out, code, 0)
	out, code = clean("cl.service")
	expectCode(t, "clean (cache and runtime)", out, code, 0)
	if _, err := os.Stat(cache); err == nil {
		t.Errorf("clean left the cache directory")
	}
	if _, err := os.Stat(rt); err == nil {
		t.Errorf("clean left the runtime directory")
	}
	if _, err := os.Stat(state + "/s"); err != nil {
		t.Errorf("clean without --what=state removed the state: %v", err)
	}
	out, code = clean("--what=state", "cl.service")
	expectCode(t, "clean --what=state", out, code, 0)
	if _, err := os.Stat(state); err == nil {
		t.Errorf("clean --what=state left the state directory")
	}
	out, code = h.systemctl("is-active", "cl.service")
	if strings.TrimSpace(out) != "inactive" {
		t.Errorf("after clean the unit is %q (%d)", out, code)
	}
	out, code = clean("--what=logs", "cl.service")
	expectCode(t, "clean --what=logs (none configured)", out, code, 1)
	if !strings.Contains(out, "No matching resources found") {
		t.Errorf("clean --what=logs said %q", out)
	}
}

// TestCleanOverGodbus checks CleanUnit's and Clean's errors by name, and
// the maintenance state a clean passes through.
func TestCleanOverGodbus(t *testing.T) {
	h := newHarness(t, map[string]string{"cl.service": cleanUnit, "t.target": "[unit]\n"})
	conn := godbusClient(t, h.sock)
	mgr := conn.Object(busName, managerPath)
	for _, c := range []struct {
		unit string
		what []string
		want string
	}{
		{"t.target", []string{"all"}, ErrNameNotSupported},
		{"cl.service", []string{"bogus"}, ErrNameInvalidArgs},
		{"cl.service", []string{"logs"}, ErrNameNothingToClean},
		{"cl.service", []string{}, ErrNameNothingToClean},
		{"nope.service", []string{"all"}, ErrNameNoSuchUnit},
		{"not a unit", []string{"all"}, ErrNameInvalidArgs},
	} {
		err := mgr.Call(ifaceManager+".CleanUnit", 0, c.unit, c.what).Err
		if got := dbusErrorName(err); got != c.want {
			t.Errorf("CleanUnit(%s, %v): %v, want %s", c.unit, c.what, err, c.want)
		}
	}
	obj := conn.Object(busName, UnitPath("cl.service"))
	var can []string
	if err := obj.Call(ifaceProperties+".Get", 0, ifaceUnit, "CanClean").Store(&can); err != nil {
		t.Fatal(err)
	}
	if strings.Join(can, ",") != "runtime,state,cache" {
		t.Errorf("CanClean = %v", can)
	}
	if err := obj.Call(ifaceUnit+".Clean", 0, []string{"all"}).Err; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := obj.GetProperty(ifaceUnit + ".ActiveState")
		if err != nil {
			t.Fatal(err)
		}
		if v.Value() == "inactive" {
			break
		}
		if v.Value() != "maintenance" || time.Now().After(deadline) {
			t.Fatalf("ActiveState during and after a clean: %v", v.Value())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var result dbus.Variant
	if err := obj.Call(ifaceProperties+".Get", 0, ifaceService, "CleanResult").Store(&result); err != nil {
		t.Fatal(err)
	}
	if result.Value() != "success" {
		t.Errorf("CleanResult = %v", result.Value())
	}
}

// sameLines compares two texts as sets of lines (systemctl show prints
// properties in the order the server lists them).
func sameLines(a, b string) bool {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x) != len(y) {
		return false
	}
	seen := map[string]int{}
	for _, l := range x {
		seen[l]++
	}
	for _, l := range y {
		if seen[l] == 0 {
			return false
		}
		seen[l]--
	}
	return true
}
