package units

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/units/api"
	"vigil/units/cgroup"
)

// testCgroupTree is a fresh subtree of the host's cgroup2 hierarchy for
// one test (skipped without one), emptied and removed at the end.
func testCgroupTree(t testing.TB) *cgroup.Tree {
	t.Helper()
	mount, err := cgroup.Mountpoint()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp(mount, "vigil-units-test-"+strconv.Itoa(os.Getpid())+"-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	tree, err := cgroup.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tree.Kill("")
		for i := 0; i < 100; i++ {
			if p, _ := tree.Populated(""); !p {
				break
			}
			time.Sleep(20 * time.Millisecond)
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
	return tree
}

func newCgroupHarness(t *testing.T, files map[string]string) (*harness, *cgroup.Tree) {
	t.Helper()
	tree := testCgroupTree(t)
	h := newHarnessWith(t, files, func(o *Options) { o.Cgroups = tree })
	return h, tree
}

func (h *harness) status(name string) api.UnitStatus {
	var st api.UnitStatus
	h.do(func() { st, _ = h.m.Status(name) })
	return st
}

func procCgroup(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	p, err := cgroup.CgroupOfProc(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServiceBornInItsCgroup(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{
		"sleeper.service": "[service]\nexec-start = \"/bin/sleep 300\"\n",
		"db.service":      "[service]\nexec-start = \"/bin/sleep 300\"\n[resources]\nslice = \"app-db.slice\"\n",
	})
	for _, name := range []string{"sleeper.service", "db.service"} {
		if res, why := h.start(name); res != api.ResultDone {
			t.Fatalf("%s: %s (%s)", name, res, why)
		}
	}
	for name, rel := range map[string]string{"sleeper.service": "system.slice/sleeper.service", "db.service": "app.slice/app-db.slice/db.service"} {
		st := h.status(name)
		if st.ControlGroup != tree.Name(rel) {
			t.Errorf("%s: ControlGroup %q, want %q", name, st.ControlGroup, tree.Name(rel))
		}
		if st.MainPID == 0 || procCgroup(t, st.MainPID) != tree.Name(rel) {
			t.Errorf("%s: main process %d is not in %s", name, st.MainPID, rel)
		}
		if st.CPUUsageNSec == nil {
			t.Errorf("%s: no CPU accounting", name)
		}
		if len(st.Processes) != 1 || st.Processes[0].PID != st.MainPID {
			t.Errorf("%s: processes %+v", name, st.Processes)
		}
	}
	// The listing (initctl list -o json) carries the accounting too.
	var rows []api.UnitSummary
	h.do(func() { rows = h.m.List(api.ListArgs{Patterns: []string{"db.service"}}) })
	if len(rows) != 1 || rows[0].Accounting == nil || rows[0].Accounting.CPUUsageNSec == nil {
		t.Errorf("list without accounting: %+v", rows)
	}
	if res, _ := h.stop("sleeper.service"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	if _, err := os.Stat(tree.Path("system.slice/sleeper.service")); !os.IsNotExist(err) {
		t.Errorf("cgroup left after stop: %v", err)
	}
}

// A daemon that double-forks, detaches into its own session and ignores
// SIGTERM: only the cgroup knows all of it, and only cgroup.kill ends it.
func TestDetachedDaemonFullyKilledOnStop(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{
		"daemon.service": `[service]
type = "forking"
exec-start = ["/bin/sh", "-c", "setsid /bin/sh -c 'trap \"\" TERM; sleep 300 & while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 & exit 0"]
timeout-stop = "500ms"
`,
	})
	if res, why := h.start("daemon.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	rel := "system.slice/daemon.service"
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); len(pids) < 2 && time.Now().Before(deadline); {
		pids, _ = tree.Procs(rel)
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) < 2 {
		t.Fatalf("daemon processes %v", pids)
	}
	if a, _ := h.state("daemon.service"); a != "active" {
		t.Fatalf("state %s", a)
	}
	begin := time.Now()
	if res, _ := h.stop("daemon.service"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	t.Logf("stop took %v", time.Since(begin))
	if took := time.Since(begin); took < 400*time.Millisecond {
		t.Errorf("stop took %v: the TERM-ignoring shell should have needed the final kill", took)
	}
	for _, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("process %d survived the stop", pid)
		}
	}
	if _, err := os.Stat(tree.Path(rel)); !os.IsNotExist(err) {
		t.Errorf("cgroup left after stop: %v", err)
	}
	if !strings.Contains(h.logText(), "Killing") {
		t.Errorf("no final kill in the log:\n%s", h.logText())
	}
}

// A forking service whose main process is unknown runs as long as its
// cgroup has processes: the "empty" event from cgroup.events ends it.
func TestEmptyCgroupEndsServiceWithoutMainPID(t *testing.T) {
	h, _ := newCgroupHarness(t, map[string]string{
		"brief.service": "[service]\ntype = \"forking\"\nguess-main-pid = false\nexec-start = [\"/bin/sh\", \"-c\", \"setsid sleep 3 & exit 0\"]\n",
	})
	// The clock starts before the sleep does, and the sleep is long enough
	// for a loaded machine to finish the start job and look at the state.
	begin := time.Now()
	if res, why := h.start("brief.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	if a, _ := h.state("brief.service"); a != "active" {
		t.Fatalf("not active after start (%v): %s", time.Since(begin), a)
	}
	h.waitState("brief.service", "inactive", 30*time.Second)
	if took := time.Since(begin); took < 3*time.Second {
		t.Errorf("inactive after %v: the detached sleep was still running", took)
	}
	st := h.status("brief.service")
	if st.Result != "success" || st.ControlGroup != "" {
		t.Errorf("result %q, control group %q", st.Result, st.ControlGroup)
	}
}

func TestKillModeProcessLeavesTheRest(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{
		"keep.service": "[service]\nkill-mode = \"process\"\nexec-start = [\"/bin/sh\", \"-c\", \"sleep 300 & exec sleep 301\"]\n",
	})
	if res, why := h.start("keep.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	rel := "system.slice/keep.service"
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); len(pids) < 2 && time.Now().Before(deadline); {
		pids, _ = tree.Procs(rel)
		time.Sleep(10 * time.Millisecond)
	}
	main := h.status("keep.service").MainPID
	if res, _ := h.stop("keep.service"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	left, _ := tree.Procs(rel)
	if pidAlive(main) || len(left) != 1 || left[0] == main {
		t.Fatalf("main %d alive=%v; left in the group %v (from %v)", main, pidAlive(main), left, pids)
	}
	tree.Kill(rel)
}

func TestSetPropertyPersistsAndApplies(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{
		"app.service": "[service]\nexec-start = \"/bin/sleep 300\"\n",
	})
	if res, why := h.start("app.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	var res api.SetPropertyResult
	var err error
	h.do(func() {
		res, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "app.service", Properties: []string{"memory-max=64M", "cpu-weight=200", "tasks-max=30"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(h.units, "app.service.d", SetPropertyDropIn)
	if res.DropIn != want {
		t.Fatalf("drop-in %s, want %s", res.DropIn, want)
	}
	text := readFile(t, want)
	for _, line := range []string{`memory-max = "64M"`, `cpu-weight = 200`, `tasks-max = "30"`} {
		if !strings.Contains(text, line) {
			t.Errorf("drop-in lacks %s:\n%s", line, text)
		}
	}
	var max uint64
	h.do(func() {
		if r := h.m.Unit("app.service").cfg.Resources; r != nil && r.MemoryMax != nil {
			max = r.MemoryMax.Bytes
		}
	})
	if max != 64<<20 {
		t.Errorf("memory-max after set-property: %d", max)
	}
	rel := "system.slice/app.service"
	if tree.Available("memory") {
		if v, _ := tree.Read(rel, "memory.max"); strings.TrimSpace(v) != strconv.Itoa(64<<20) {
			t.Errorf("memory.max = %q", v)
		}
	} else if !strings.Contains(strings.Join(res.Warnings, "\n"), "memory.max=67108864") {
		t.Errorf("no warning about the missing memory controller: %v", res.Warnings)
	}
	// A later call merges; an empty value removes a key.
	h.do(func() {
		_, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "app.service", Properties: []string{"cpu-weight=", "memory-max=128M"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	text = readFile(t, want)
	if strings.Contains(text, "cpu-weight") || !strings.Contains(text, `memory-max = "128M"`) || !strings.Contains(text, "tasks-max") {
		t.Errorf("merged drop-in:\n%s", text)
	}
	// Bad input changes nothing.
	for _, bad := range [][]string{{"memory-maxx=1G"}, {"memory-max=lots"}, {"cpu-weight=0"}, {"nokey"}} {
		h.do(func() {
			_, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "app.service", Properties: bad})
		})
		if err == nil {
			t.Errorf("set-property %v accepted", bad)
		}
		if got := readFile(t, want); got != text {
			t.Errorf("set-property %v changed the drop-in:\n%s", bad, got)
		}
	}
	if err != nil && !strings.Contains(err.Error(), "") {
		t.Log(err)
	}
	h.do(func() {
		_, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "app.service", Properties: []string{"memory-max=1G"}, Runtime: true})
	})
	if err == nil {
		t.Errorf("--runtime without a unit directory under /run accepted")
	}
	if a, _ := h.state("app.service"); a != "active" {
		t.Errorf("set-property disturbed the unit: %s", a)
	}
}
