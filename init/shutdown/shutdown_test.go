package shutdown

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a helper in fresh namespaces, so
// that killing, unmounting and rebooting never touch the host.
const helperEnv = "VIGIL_SHUTDOWN_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

func runHelper(mode, arg string) int {
	switch mode {
	case "sleep":
		time.Sleep(time.Hour)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready") // the parent waits for this before signalling
		time.Sleep(time.Hour)
	case "killall":
		return helperKillAll()
	case "unmount":
		return helperUnmount(arg)
	case "reboot":
		return helperReboot(arg)
	}
	return 2
}

// helperCmd builds a command running this test binary in mode with
// namespace flags.
func helperCmd(t *testing.T, mode, arg string, cloneflags uintptr) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for namespaces")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	return cmd
}

// privateProc makes mount propagation private and mounts a /proc that
// shows this PID namespace.
func privateProc() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	return nil
}

// reapForever reaps every child, as PID 1's reaper does.
func reapForever() {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err == unix.ECHILD {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

type killAllReport struct {
	Spawned      []int
	Excepted     int
	TermSignal   []int
	AfterTerm    []int
	Progress     int
	KillSignal   []int
	AfterKill    []int
	ExceptedLive bool
}

func pids(ps []Proc) []int {
	out := []int{}
	for _, p := range ps {
		out = append(out, p.PID)
	}
	sort.Ints(out)
	return out
}

func helperKillAll() int {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "helper is not PID 1 of its namespace")
		return 3
	}
	if err := privateProc(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	var rep killAllReport
	spawn := func(mode string) int {
		c := exec.Command(os.Args[0], "-test.run=^$", "x")
		c.Env = append(os.Environ(), helperEnv+"="+mode)
		out, err := c.StdoutPipe()
		if err == nil {
			err = c.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(5)
		}
		if mode == "ignore-term" {
			_, _ = bufio.NewReader(out).ReadString('\n')
		}
		rep.Spawned = append(rep.Spawned, c.Process.Pid)
		return c.Process.Pid
	}
	spawn("sleep")
	spawn("sleep")
	stopped := spawn("sleep")
	ignorer := spawn("ignore-term")
	rep.Excepted = spawn("sleep")
	// An orphan: sh exits at once, leaving its background sleep to PID 1.
	sh := exec.Command("/bin/sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!")
	out, err := sh.Output()
	if err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			rep.Spawned = append(rep.Spawned, pid)
		}
	}
	// Start reaping only now: the reaper would steal sh's exit status.
	go reapForever()
	_ = unix.Kill(stopped, unix.SIGSTOP)
	except := []int{rep.Excepted}

	term, _ := KillAll(unix.SIGTERM, except)
	rep.TermSignal = pids(term)
	// A loaded machine may take long to end the others and to reap them
	// (KillAll signals zombies too, as a zombie leader may still have live
	// threads): wait for that state first, so that the timed wait below
	// has only the process ignoring SIGTERM left to time out on.
	WaitForProcesses(60*time.Second, append([]int{ignorer}, except...), nil)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if left, _ := Processes(append([]int{ignorer}, except...)); len(left) == 0 {
			break
		}
	}
	rest := WaitForProcesses(time.Second, except, func([]Proc) { rep.Progress++ })
	rep.AfterTerm = pids(rest)
	killed, _ := KillAll(unix.SIGKILL, except)
	rep.KillSignal = pids(killed)
	rep.AfterKill = pids(WaitForProcesses(60*time.Second, except, nil))
	rep.ExceptedLive = unix.Kill(rep.Excepted, 0) == nil
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

func TestKillAllAndWaitInPIDNamespace(t *testing.T) {
	cmd := helperCmd(t, "killall", "x", syscall.CLONE_NEWPID|syscall.CLONE_NEWNS)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var rep killAllReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	t.Logf("%+v", rep)
	var notExcepted []int
	for _, pid := range rep.Spawned {
		if pid != rep.Excepted {
			notExcepted = append(notExcepted, pid)
		}
	}
	sort.Ints(notExcepted)
	if len(rep.Spawned) != 6 || len(notExcepted) != 5 {
		t.Fatalf("spawned too few: %v", rep.Spawned)
	}
	if !reflect.DeepEqual(rep.TermSignal, notExcepted) {
		t.Errorf("SIGTERM went to %v, want %v (all but PID 1, self and the exception)", rep.TermSignal, notExcepted)
	}
	if len(rep.AfterTerm) != 1 {
		t.Errorf("after SIGTERM %v remain, want only the process ignoring SIGTERM", rep.AfterTerm)
	}
	if rep.Progress == 0 {
		t.Error("progress never called")
	}
	if !reflect.DeepEqual(rep.KillSignal, rep.AfterTerm) {
		t.Errorf("SIGKILL went to %v, want %v", rep.KillSignal, rep.AfterTerm)
	}
	if len(rep.AfterKill) != 0 {
		t.Errorf("survivors after SIGKILL: %v", rep.AfterKill)
	}
	if !rep.ExceptedLive {
		t.Error("the excepted process was killed")
	}
}

func TestProcessesSkipsKernelThreadsAndSelf(t *testing.T) {
	procs, err := Processes(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.PID == 1 || p.PID == os.Getpid() {
			t.Errorf("listed %v", p)
		}
		if p.PID == 2 || p.Comm == "kthreadd" {
			t.Errorf("listed a kernel thread: %v", p)
		}
	}
	// Our parent (go test) is a user process and must be listed.
	found := false
	for _, p := range procs {
		if p.PID == os.Getppid() {
			found = true
		}
	}
	if !found {
		t.Errorf("parent %d not listed", os.Getppid())
	}
}

type unmountReport struct {
	Result     UnmountResult
	Problems   []string
	LeftUnder  []string
	BeforeSeen int
}

func helperUnmount(dir string) int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 4
	}
	mount := func(rel string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(5)
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			fmt.Fprintln(os.Stderr, "mount", p, err)
			os.Exit(5)
		}
	}
	mount("a")
	mount("a/b")
	mount("a/b/c")
	mount("with space")
	mount("stacked")
	mount("stacked")
	mount("busy")
	held, err := os.Create(filepath.Join(dir, "busy", "held"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 6
	}
	defer held.Close()

	var rep unmountReport
	before, _ := ReadMountinfo(DefaultMountinfo)
	for _, m := range before {
		if strings.HasPrefix(m.MountPoint, dir+"/") {
			rep.BeforeSeen++
		}
	}
	rep.Result = UnmountUnder(DefaultMountinfo, dir)
	for _, p := range rep.Result.Problems {
		rep.Problems = append(rep.Problems, p.Error())
	}
	rep.Result.Problems = nil
	after, _ := ReadMountinfo(DefaultMountinfo)
	for _, m := range after {
		if strings.HasPrefix(m.MountPoint, dir+"/") {
			rep.LeftUnder = append(rep.LeftUnder, m.MountPoint)
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

func TestUnmountUnderInMountNamespace(t *testing.T) {
	dir := t.TempDir()
	cmd := helperCmd(t, "unmount", dir, syscall.CLONE_NEWNS)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var rep unmountReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	t.Logf("%+v", rep)
	if rep.BeforeSeen != 7 {
		t.Fatalf("helper saw %d mounts before, want 7", rep.BeforeSeen)
	}
	if len(rep.LeftUnder) != 0 {
		t.Errorf("still mounted: %v", rep.LeftUnder)
	}
	want := []string{
		dir + "/a/b/c", dir + "/stacked", dir + "/a/b", dir + "/with space", dir + "/stacked", dir + "/a",
	}
	got := rep.Result.Unmounted
	if len(got) != len(want) {
		t.Fatalf("unmounted %v, want %d mounts", got, len(want))
	}
	pos := map[string]int{}
	for i, p := range got {
		pos[p] = i
	}
	if !(pos[dir+"/a/b/c"] < pos[dir+"/a/b"] && pos[dir+"/a/b"] < pos[dir+"/a"]) {
		t.Errorf("nested mounts not unmounted deepest first: %v", got)
	}
	if _, ok := pos[dir+"/with space"]; !ok {
		t.Errorf("mount point with a space (\\040) not unmounted: %v", got)
	}
	if !reflect.DeepEqual(rep.Result.Lazy, []string{dir + "/busy"}) {
		t.Errorf("lazy = %v, want the busy mount", rep.Result.Lazy)
	}
	if rep.Result.Clean() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "busy") {
		t.Errorf("problems = %v", rep.Problems)
	}
	if rep.Result.RootReadOnly {
		t.Error("root remounted for a prefix run")
	}
	// The host never saw any of it.
	host, err := ReadMountinfo(DefaultMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range host {
		if strings.HasPrefix(m.MountPoint, dir) {
			t.Errorf("helper mount leaked to the host: %s", m.MountPoint)
		}
	}
}

func helperReboot(action string) int {
	// Guard: reboot(2) only turns into "kill my namespace's init" when
	// called from a child PID namespace. Never call it otherwise.
	if os.Getpid() != 1 || os.Getenv("VIGIL_PARENT_PIDNS") == "" {
		return 3
	}
	if self, err := os.Readlink("/proc/self/ns/pid"); err != nil || self == os.Getenv("VIGIL_PARENT_PIDNS") {
		return 3
	}
	a := map[string]Action{"poweroff": PowerOff, "reboot": Restart, "halt": Halt}[action]
	err := Reboot(a)
	fmt.Fprintln(os.Stderr, "Reboot returned:", err)
	return 7
}

func TestRebootInPIDNamespace(t *testing.T) {
	parentNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skip(err)
	}
	for action, want := range map[string]syscall.Signal{"reboot": syscall.SIGHUP, "poweroff": syscall.SIGINT, "halt": syscall.SIGINT} {
		cmd := helperCmd(t, "reboot", action, syscall.CLONE_NEWPID)
		cmd.Env = append(cmd.Env, "VIGIL_PARENT_PIDNS="+parentNS)
		err := cmd.Run()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != want {
			t.Errorf("%s: helper ended with %v (%v), want killed by %v", action, cmd.ProcessState, err, want)
		}
	}
	if err := Reboot(Action(42)); err == nil {
		t.Error("unknown action accepted")
	}
}

func TestParseMountinfo(t *testing.T) {
	const text = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
36 26 0:40 /sub /mnt/with\040space rw,nosuid shared:5 master:2 - tmpfs my\040tmpfs rw,size=4k
37 36 0:41 / /mnt/with\040space/tab\011nl\012bs\134 ro - tmpfs none rw
`
	mounts, err := ParseMountinfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 4 {
		t.Fatalf("%d mounts", len(mounts))
	}
	m := mounts[2]
	want := Mount{ID: 36, ParentID: 26, Major: 0, Minor: 40, Root: "/sub", MountPoint: "/mnt/with space", Options: "rw,nosuid",
		Optional: []string{"shared:5", "master:2"}, FSType: "tmpfs", Source: "my tmpfs", SuperOptions: "rw,size=4k"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
	if got := mounts[3].MountPoint; got != "/mnt/with space/tab\tnl\nbs\\" {
		t.Errorf("escapes: %q", got)
	}
	if mounts[1].Major != 254 || mounts[1].Optional[0] != "shared:1" {
		t.Errorf("root: %+v", mounts[1])
	}
	for _, bad := range []string{"1 2 3", "x 1 0:1 / / rw - a b c", "1 1 01 / / rw - a b c", "1 1 0:1 / / rw a b c"} {
		if _, err := ParseMountinfo(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseRealMountinfo(t *testing.T) {
	mounts, err := ReadMountinfo(DefaultMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Fatal("no mounts")
	}
	ordered := UnmountOrder(mounts)
	pos := map[int]int{}
	for i, m := range ordered {
		pos[m.ID] = i
	}
	for _, m := range ordered {
		if p, ok := pos[m.ParentID]; ok && m.ParentID != m.ID && p < pos[m.ID] {
			t.Errorf("%s comes after its parent", m.MountPoint)
		}
	}
}

func TestUnmountOrder(t *testing.T) {
	mounts := []Mount{
		{ID: 1, ParentID: 0, MountPoint: "/"},
		{ID: 2, ParentID: 1, MountPoint: "/a"},
		{ID: 3, ParentID: 2, MountPoint: "/a/b"},
		{ID: 4, ParentID: 1, MountPoint: "/c"},
		{ID: 5, ParentID: 4, MountPoint: "/c"}, // stacked on /c
		{ID: 6, ParentID: 1, MountPoint: "/d"},
		{ID: 7, ParentID: 8, MountPoint: "/loop1"}, // a parent cycle must not hang
		{ID: 8, ParentID: 7, MountPoint: "/loop2"},
	}
	var got []int
	for _, m := range UnmountOrder(mounts) {
		got = append(got, m.ID)
	}
	pos := map[int]int{}
	for i, id := range got {
		pos[id] = i
	}
	for _, pair := range [][2]int{{3, 2}, {2, 1}, {5, 4}, {4, 1}, {6, 1}} {
		if pos[pair[0]] > pos[pair[1]] {
			t.Errorf("mount %d after its parent %d: %v", pair[0], pair[1], got)
		}
	}
	if got[len(got)-1] != 1 {
		t.Errorf("root not last: %v", got)
	}
}

func TestParseProcStat(t *testing.T) {
	s, err := parseProcStat("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Comm != "a (weird) name" || s.State != 'S' || s.PPID != 1 || s.Flags != 4194560 {
		t.Errorf("%+v", s)
	}
	k, err := parseProcStat("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0")
	if err != nil || k.Flags&pfKthread == 0 {
		t.Errorf("kthreadd: %+v %v", k, err)
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseProcStat(string(self))
	if err != nil || st.PPID != os.Getppid() || st.Flags&pfKthread != 0 {
		t.Errorf("self: %+v %v", st, err)
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("26 1 254:0 / / rw - ext4 /dev/vda rw\n36 26 0:40 / /a\\040b rw - tmpfs x\\134 rw\n")
	f.Add("1 2 3 4 5 6 - \n")
	f.Add("\\0\\00\\777 - - - - - - - -")
	f.Fuzz(func(t *testing.T, text string) {
		mounts, err := ParseMountinfo(strings.NewReader(text))
		if err != nil {
			return
		}
		ordered := UnmountOrder(mounts)
		if len(ordered) != len(mounts) {
			t.Fatalf("order lost mounts: %d of %d", len(ordered), len(mounts))
		}
		for _, m := range mounts {
			IsAPIMount(m)
		}
	})
}

func FuzzParseProcStat(f *testing.F) {
	f.Add("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0")
	f.Add("2 (kthreadd) S 0 0 0 0 -1 2129984")
	f.Add(")(")
	f.Fuzz(func(t *testing.T, data string) {
		s, err := parseProcStat(data)
		if err == nil && strings.Count(data, "(") == 0 {
			t.Fatalf("parsed %q without a comm: %+v", data, s)
		}
	})
}
