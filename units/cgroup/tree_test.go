package cgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/units/unitfile"
)

// testTree is a Tree rooted in a fresh directory of this machine's
// cgroup2 hierarchy, removed at the end; it skips without one.
func testTree(t testing.TB) *Tree {
	t.Helper()
	mount, err := Mountpoint()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp(mount, "vigil-test-"+strconv.Itoa(os.Getpid())+"-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	tree, err := Open(dir)
	if err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tree.Kill("")
		for i := 0; i < 50; i++ {
			if p, _ := tree.Populated(""); !p {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				tree.Remove(e.Name())
			}
		}
		os.Remove(dir)
	})
	return tree
}

func startIn(t testing.TB, tree *Tree, rel string, argv ...string) *exec.Cmd {
	t.Helper()
	fd, err := tree.OpenFD(rel)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func waitEmpty(t testing.TB, tree *Tree, rel string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if p, err := tree.Populated(rel); err == nil && !p {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids, _ := tree.Procs(rel)
	t.Fatalf("cgroup %s still has processes %v", rel, pids)
}

func TestApplyCreatesTheTreeAndWarnsOfMissingControllers(t *testing.T) {
	tree := testTree(t)
	rel, err := UnitPath("db.service", "app-db.slice")
	if err != nil {
		t.Fatal(err)
	}
	max := unitfile.Size{Bytes: 32 << 20}
	weight := 300
	tasks := unitfile.TasksMax{Count: 50}
	settings, warn := Settings(&unitfile.ResourcesSection{MemoryMax: &max, CPUWeight: &weight, TasksMax: &tasks}, ReadMachine())
	if len(warn) != 0 {
		t.Fatalf("settings warnings: %v", warn)
	}
	warnings, err := tree.Apply(rel, settings, unitfile.Delegate{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"app.slice", "app.slice/app-db.slice", "app.slice/app-db.slice/db.service"} {
		if fi, err := os.Stat(tree.Path(d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	for _, c := range []struct{ ctrl, file, value string }{{"memory", "memory.max", "33554432"}, {"cpu", "cpu.weight", "300"}, {"pids", "pids.max", "50"}} {
		if tree.Available(c.ctrl) {
			got, err := tree.Read(rel, c.file)
			if err != nil || strings.TrimSpace(got) != c.value {
				t.Errorf("%s = %q, %v; want %s", c.file, got, err, c.value)
			}
		} else if !strings.Contains(strings.Join(warnings, "\n"), c.file+"="+c.value) {
			t.Errorf("no warning for %s without the %s controller: %v", c.file, c.ctrl, warnings)
		}
	}
}

func TestBornInGroupAndKilledWithDetachedDaemon(t *testing.T) {
	tree := testTree(t)
	rel := "system.slice/daemon.service"
	if _, err := tree.Apply(rel, nil, unitfile.Delegate{}); err != nil {
		t.Fatal(err)
	}
	// The shell double-forks a daemon into its own session and exits:
	// no process of it is our child any more, and none has our session.
	cmd := startIn(t, tree, rel, "/bin/sh", "-c", "setsid /bin/sh -c 'sleep 300 & sleep 300 & wait' </dev/null >/dev/null 2>&1 & exit 0")
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for deadline := time.Now().Add(30 * time.Second); len(pids) < 3 && time.Now().Before(deadline); {
		pids, _ = tree.Procs(rel)
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) != 3 {
		t.Fatalf("processes in the group: %v, want the daemon shell and its two sleeps", pids)
	}
	if ok, _ := tree.Populated(rel); !ok {
		t.Fatal("group with processes not populated")
	}
	if st := tree.Stats(rel); st.CPUUsageNSec == nil {
		t.Errorf("no CPU accounting: %+v", st)
	}
	if err := tree.Kill(rel); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, tree, rel)
	for _, pid := range pids {
		// Orphans are reaped by the host's init; give it a moment.
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(data), ") Z ") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !strings.Contains(string(data), ") Z ") {
			t.Errorf("process %d survived the kill: %s", pid, data)
		}
	}
	if err := tree.Remove(rel); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree.Path(rel)); !os.IsNotExist(err) {
		t.Fatalf("group still there: %v", err)
	}
}

func TestRemoveDelegatedSubgroupsAndRefuseBusy(t *testing.T) {
	tree := testTree(t)
	rel := "system.slice/deleg.service"
	if err := tree.Ensure(rel + "/payload/inner"); err != nil {
		t.Fatal(err)
	}
	cmd := startIn(t, tree, rel+"/payload/inner", "/bin/sleep", "30")
	if err := tree.Remove(rel); err == nil {
		t.Fatal("removed a group with a process")
	}
	pids, _ := tree.Procs(rel)
	if len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("Procs = %v, want [%d]", pids, cmd.Process.Pid)
	}
	n, err := tree.Signal(rel, syscall.SIGTERM)
	if err != nil || n != 1 {
		t.Fatalf("Signal reached %d, %v", n, err)
	}
	cmd.Wait()
	waitEmpty(t, tree, rel)
	if err := tree.Remove(rel); err != nil {
		t.Fatal(err)
	}
}

func TestMoveIntoGroup(t *testing.T) {
	tree := testTree(t)
	if err := tree.Ensure("x.scope"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := tree.Move("x.scope", cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	own, err := OwnCgroup(cmd.Process.Pid)
	if err != nil || own != tree.Path("x.scope") {
		t.Fatalf("OwnCgroup = %q, %v; want %s", own, err, tree.Path("x.scope"))
	}
}

func TestSettingsValues(t *testing.T) {
	m := Machine{MemTotal: 1 << 30, TasksLimit: 1000, Device: func(p string) (string, error) {
		if p == "/dev/vda" {
			return "254:0", nil
		}
		return "", os.ErrNotExist
	}}
	half := unitfile.Size{Percent: 50}
	inf := unitfile.Size{Infinity: true}
	q := unitfile.Percent(150)
	w := 50
	tasks := unitfile.TasksMax{Percent: 10}
	r := &unitfile.ResourcesSection{
		MemoryHigh: &half, MemoryMax: &inf, CPUQuota: &q, CPUQuotaPeriod: 50 * time.Millisecond,
		AllowedCPUs: "0-1 3", IOWeight: &w, TasksMax: &tasks,
		IOReadBandwidthMax: unitfile.DeviceLimits{{Device: "/dev/vda", Value: unitfile.Size{Bytes: 1 << 20}}},
		IOWriteIOPSMax:     unitfile.DeviceLimits{{Device: "/dev/vda", Value: unitfile.Size{Bytes: 100}}, {Device: "/dev/nope", Value: unitfile.Size{Bytes: 1}}},
	}
	settings, warnings := Settings(r, m)
	got := map[string]string{}
	for _, s := range settings {
		if !s.Default {
			got[s.File] = s.Value
		}
	}
	want := map[string]string{
		"memory.high": "536870912", "memory.max": "max", "cpu.max": "75000 50000", "cpuset.cpus": "0-1,3",
		"io.weight": "default 50", "pids.max": "100", "io.max": "254:0 rbps=1048576 wiops=100",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "/dev/nope") {
		t.Errorf("warnings %v", warnings)
	}
	if c := Controllers(settings, unitfile.Delegate{}); strings.Join(c, ",") != "cpu,cpuset,io,memory,pids" {
		t.Errorf("controllers %v", c)
	}
	// Nothing set: only defaults, and only the accounting controllers.
	settings, _ = Settings(nil, m)
	for _, s := range settings {
		if !s.Default {
			t.Errorf("unset section gave %s=%s", s.File, s.Value)
		}
	}
	if c := Controllers(settings, unitfile.Delegate{}); strings.Join(c, ",") != "memory,pids" {
		t.Errorf("controllers %v", c)
	}
}
