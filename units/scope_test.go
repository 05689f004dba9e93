package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"vigil/units/api"
)

// startOutside starts a process that is not the manager's: the test's own
// child, as systemd-run is a stranger to the manager it asks for a scope.
func startOutside(t *testing.T, script string) int {
	pid, _ := startOutsideGated(t, script)
	return pid
}

// startOutsideGated also returns a function that writes a line to the
// process's stdin, for scripts that wait with `read`.
func startOutsideGated(t *testing.T, script string) (int, func()) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// The harness's reaper collects it; never Wait here.
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); w.Close() })
	return pid, func() { w.Write([]byte("go\n")) }
}

func scopeOf(name string, pids []int, extra ...TransientSetting) TransientUnit {
	t := TransientUnit{Name: name, PIDs: pids, Settings: []TransientSetting{{"unit", "description", "Scope " + name}}}
	t.Settings = append(t.Settings, extra...)
	return t
}

func (h *harness) unitGone(name string) bool {
	gone := false
	h.do(func() { gone = h.m.Unit(name) == nil })
	return gone
}

func TestScopeAdoptsProcessIntoItsCgroupAndEndsWithIt(t *testing.T) {
	h, tree := newCgroupHarness(t, nil)
	pid := startOutside(t, "exec sleep 300")
	res, err := h.startTransient(scopeOf("run-a.scope", []int{pid}), false)
	if err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v\n%s", res, err, h.logText())
	}
	if a, s := h.state("run-a.scope"); a != "active" || s != "running" {
		t.Fatalf("state %s (%s)", a, s)
	}
	want := tree.Name("system.slice/run-a.scope")
	if got := procCgroup(t, pid); got != want {
		t.Errorf("process %d is in %s, want %s", pid, got, want)
	}
	st := h.status("run-a.scope")
	if st.ControlGroup != want || len(st.Processes) != 1 || st.Processes[0].PID != pid {
		t.Errorf("status: cgroup %q processes %+v", st.ControlGroup, st.Processes)
	}
	var owner string
	var ok bool
	h.do(func() { owner, ok = h.m.UnitByControlGroup(want) })
	if !ok || owner != "run-a.scope" {
		t.Errorf("UnitByControlGroup(%s) = %q, %v", want, owner, ok)
	}
	// set-property reaches a running scope; its drop-in goes with it.
	var set api.SetPropertyResult
	h.do(func() {
		set, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "run-a.scope", Properties: []string{"tasks-max=100"}})
	})
	if err != nil || set.DropIn == "" {
		t.Fatalf("set-property on a scope: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scope to be collected once empty", func() bool { return h.unitGone("run-a.scope") })
	if _, err := os.Stat(filepath.Dir(set.DropIn)); !os.IsNotExist(err) {
		t.Errorf("set-property's drop-in outlived the scope: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "run", "transient", "run-a.scope")); !os.IsNotExist(err) {
		t.Errorf("transient file left: %v", err)
	}
	if _, err := os.Stat(tree.Path("system.slice/run-a.scope")); !os.IsNotExist(err) {
		t.Errorf("the scope's cgroup was not removed: %v", err)
	}
}

func TestScopeStopSignalsTheGroupAndEscalates(t *testing.T) {
	h, _ := newCgroupHarness(t, nil)
	// A child of the adopted process is in the group too and is stopped
	// with it.
	pid, release := startOutsideGated(t, "read x; sleep 300 & wait")
	res, err := h.startTransient(scopeOf("run-b.scope", []int{pid}), false)
	if err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v", res, err)
	}
	release()
	var pids []int
	waitFor(t, "the child to be in the scope", func() bool {
		pids = pidsOf(h.status("run-b.scope"))
		return len(pids) == 2
	})
	if res, _ := h.stop("run-b.scope"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	waitFor(t, "the stopped scope to be collected", func() bool { return h.unitGone("run-b.scope") })
	for _, p := range pids {
		if pidAlive(p) {
			t.Errorf("process %d survived the stop", p)
		}
	}

	// One that ignores SIGTERM is killed after timeout-stop, and the
	// scope fails with result timeout.
	stubborn := startOutside(t, "trap '' TERM; while :; do sleep 0.05; done")
	waitFor(t, "the shell to ignore SIGTERM", func() bool { return ignoresSIGTERM(stubborn) })
	res, err = h.startTransient(scopeOf("run-c.scope", []int{stubborn},
		TransientSetting{"scope", "timeout-stop", "300ms"}), false)
	if err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v", res, err)
	}
	if res, _ := h.stop("run-c.scope"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	if a, _ := h.state("run-c.scope"); a != "failed" {
		t.Errorf("state after a forced stop: %s", a)
	}
	if r := h.status("run-c.scope").Result; r != "timeout" {
		t.Errorf("result %q, want timeout", r)
	}
	if pidAlive(stubborn) {
		t.Errorf("the stubborn process survived SIGKILL")
	}
	if err := h.resetFailed("run-c.scope"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed scope to be collected after reset-failed", func() bool { return h.unitGone("run-c.scope") })
}

// pidsOf lists the PIDs of a status.
func pidsOf(st api.UnitStatus) []int {
	var out []int
	for _, p := range st.Processes {
		out = append(out, p.PID)
	}
	return out
}

func TestScopeWithoutCgroupsFollowsPidfds(t *testing.T) {
	h := newHarness(t, nil)
	pid := startOutside(t, "exec sleep 300")
	res, err := h.startTransient(scopeOf("run-d.scope", []int{pid}), false)
	if err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v\n%s", res, err, h.logText())
	}
	st := h.status("run-d.scope")
	if st.Active != "active" || len(st.Processes) != 1 || st.Processes[0].PID != pid {
		t.Fatalf("status %s processes %+v", st.Active, st.Processes)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scope to end with its process", func() bool { return h.unitGone("run-d.scope") })

	// Stop signals the adopted process through its pidfd.
	pid = startOutside(t, "exec sleep 300")
	if res, err := h.startTransient(scopeOf("run-e.scope", []int{pid}), false); err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v", res, err)
	}
	if res, _ := h.stop("run-e.scope"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	waitFor(t, "the stopped process to go", func() bool { return !pidAlive(pid) })
}

func TestScopeWithNoLiveProcessFailsWithResources(t *testing.T) {
	for _, withCgroups := range []bool{false, true} {
		var h *harness
		if withCgroups {
			h, _ = newCgroupHarness(t, nil)
		} else {
			h = newHarness(t, nil)
		}
		// A PID far above pid_max is never alive.
		res, err := h.startTransient(scopeOf("run-f.scope", []int{1 << 30}), false)
		if err != nil || res != api.ResultFailed {
			t.Fatalf("cgroups %v: start: %q %v", withCgroups, res, err)
		}
		st := h.status("run-f.scope")
		if st.Active != "failed" || st.Result != "resources" {
			t.Errorf("cgroups %v: state %s result %s", withCgroups, st.Active, st.Result)
		}
		if !strings.Contains(h.logText(), "No PIDs left to attach") {
			t.Errorf("cgroups %v: log does not say why:\n%s", withCgroups, h.logText())
		}
	}
}

func TestScopeRequestsAreChecked(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		t    TransientUnit
		want string
	}{
		{scopeOf("run-g.scope", nil), "PIDs"},
		{scopeOf("run-g.scope", []int{0}), "invalid PID"},
		{scopeOf("run-g.scope", []int{os.Getpid()}), "the manager itself"},
		{TransientUnit{Name: "x.service", PIDs: []int{1}, Settings: transientOf("x.service", []string{"/bin/true"}).Settings}, "only scopes"},
		{scopeOf("run-g.scope", []int{1}, TransientSetting{"scope", "kill-mode", "sideways"}), "kill-mode"},
		{scopeOf("run-g.scope", []int{1}, TransientSetting{"service", "type", "oneshot"}), "service"},
		{TransientUnit{Name: "x.timer"}, "only services and scopes"},
	} {
		if _, err := h.startTransient(tc.t, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want one about %q", tc.t.Name, tc.t.PIDs, err, tc.want)
		}
	}
	if !h.unitGone("run-g.scope") {
		t.Errorf("a refused scope was left loaded")
	}
}

func TestScopeAbandon(t *testing.T) {
	h := newHarness(t, nil)
	pid := startOutside(t, "exec sleep 300")
	if res, err := h.startTransient(scopeOf("run-h.scope", []int{pid}), false); err != nil || res != api.ResultDone {
		t.Fatalf("start: %q %v", res, err)
	}
	var err error
	h.do(func() { err = h.m.AbandonScope("run-h.scope") })
	if err != nil {
		t.Fatal(err)
	}
	if a, s := h.state("run-h.scope"); a != "active" || s != "abandoned" {
		t.Errorf("after Abandon: %s (%s)", a, s)
	}
	h.do(func() { err = h.m.AbandonScope("nope.scope") })
	if err == nil {
		t.Errorf("AbandonScope of an unknown unit succeeded")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "the abandoned scope to end with its process", func() bool { return h.unitGone("run-h.scope") })
	h.do(func() { err = h.m.AbandonScope("run-h.scope") })
	if err == nil {
		t.Errorf("AbandonScope of a collected scope succeeded")
	}
}

func (h *harness) resetFailed(name string) error {
	var err error
	h.do(func() { err = h.m.ResetFailed([]string{name}) })
	return err
}

// ignoresSIGTERM reads SigIgn from /proc/PID/status.
func ignoresSIGTERM(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(syscall.SIGTERM-1)) != 0
		}
	}
	return false
}
