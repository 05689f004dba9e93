package units

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vigil/units/api"
)

// execDirHarness is a harness whose units' directories go below its own
// temporary roots (traversable by other users).
func execDirHarness(t *testing.T, files map[string]string) (*harness, ExecDirectoryRoots) {
	t.Helper()
	var roots ExecDirectoryRoots
	h := newHarnessWith(t, files, func(o *Options) {
		base := filepath.Dir(o.RuntimeDir)
		roots = ExecDirectoryRoots{Runtime: filepath.Join(base, "r-run"), State: filepath.Join(base, "r-lib"),
			Cache: filepath.Join(base, "r-cache"), Logs: filepath.Join(base, "r-log"), Configuration: filepath.Join(base, "r-etc")}
		o.ExecDirectoryRoots = roots
		for d := base; d != "/" && d != "."; d = filepath.Dir(d) {
			os.Chmod(d, 0o755) // t.TempDir makes 0700 directories: let the unit's user through
			if d == os.TempDir() {
				break
			}
		}
	})
	return h, roots
}

func nobodyIDs(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

func owner(t *testing.T, p string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (h *harness) clean(name string, what ...string) error {
	var err error
	h.do(func() { err = h.m.CleanUnit(name, what) })
	return err
}

// waitCleaned waits until a clean has ended (the unit left maintenance).
func (h *harness) waitCleaned(name string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if a, _ := h.state(name); a != string(StateMaintenance) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s still in maintenance after 30 s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecDirectoriesAndClean checks that a unit's directories are made
// before it starts, owned by its user (configuration by root) with their
// modes, passed in $RUNTIME_DIRECTORY and friends, that the runtime ones
// go when it stops, and that clean removes the kinds asked for, only from
// an inactive unit.
func TestExecDirectoriesAndClean(t *testing.T) {
	uid, gid := nobodyIDs(t)
	h, roots := execDirHarness(t, map[string]string{
		"dirs.service": `[service]
user = "nobody"
runtime-directory = "dr dr2/sub"
state-directory = "ds"
state-directory-mode = "0700"
cache-directory = "dc"
logs-directory = "dl"
configuration-directory = "de"
exec-start = ["/bin/sh", "-c", "echo \"$RUNTIME_DIRECTORY|$STATE_DIRECTORY|$CACHE_DIRECTORY|$LOGS_DIRECTORY|$CONFIGURATION_DIRECTORY\" > \"$STATE_DIRECTORY/env.tmp\" && mv \"$STATE_DIRECTORY/env.tmp\" \"$STATE_DIRECTORY/env\" && exec sleep 300"]
`,
		"keep.service": `[service]
type = "oneshot"
remain-after-exit = true
runtime-directory = "kept"
runtime-directory-preserve = "yes"
exec-start = "/bin/true"
`,
		"plain.service": "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n",
		"t.target":      "[unit]\ndescription = \"a target\"\n",
	})
	if r, reason := h.start("dirs.service"); r != api.ResultDone {
		t.Fatalf("start: %s %s\n%s", r, reason, h.logText())
	}
	envFile := filepath.Join(roots.State, "ds", "env")
	deadline := time.Now().Add(20 * time.Second)
	for !exists(envFile) {
		if time.Now().After(deadline) {
			t.Fatalf("the service did not write %s\n%s", envFile, h.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := strings.Join([]string{
		filepath.Join(roots.Runtime, "dr") + ":" + filepath.Join(roots.Runtime, "dr2/sub"),
		filepath.Join(roots.State, "ds"), filepath.Join(roots.Cache, "dc"),
		filepath.Join(roots.Logs, "dl"), filepath.Join(roots.Configuration, "de")}, "|")
	if got := strings.TrimSpace(readFile(t, envFile)); got != want {
		t.Errorf("the unit's variables:\n got %s\nwant %s", got, want)
	}
	for _, c := range []struct {
		path           string
		uid, gid       int
		mode           os.FileMode
		whatItShouldBe string
	}{
		{filepath.Join(roots.State, "ds"), uid, gid, 0o700, "the user's, state-directory-mode"},
		{filepath.Join(roots.Runtime, "dr2/sub"), uid, gid, 0o755, "the user's"},
		{filepath.Join(roots.Runtime, "dr2"), 0, 0, 0o755, "a parent: root's"},
		{filepath.Join(roots.Configuration, "de"), 0, 0, 0o755, "configuration: root's"},
	} {
		u, g, m := owner(t, c.path)
		if u != c.uid || g != c.gid || m != c.mode {
			t.Errorf("%s is %d:%d %o, want %d:%d %o (%s)", c.path, u, g, m, c.uid, c.gid, c.mode, c.whatItShouldBe)
		}
	}
	var can []string
	h.do(func() { can = h.m.CanClean("dirs.service") })
	if strings.Join(can, " ") != "runtime state cache logs configuration" {
		t.Errorf("CanClean = %v", can)
	}
	if err := h.clean("dirs.service", "all"); !errors.Is(err, ErrCleanUnitBusy) {
		t.Errorf("clean of an active unit: %v, want %v", err, ErrCleanUnitBusy)
	}

	h.stop("dirs.service")
	for _, p := range []string{filepath.Join(roots.Runtime, "dr"), filepath.Join(roots.Runtime, "dr2/sub")} {
		if exists(p) {
			t.Errorf("runtime directory %s outlived the stop", p)
		}
	}
	for _, p := range []string{filepath.Join(roots.State, "ds"), filepath.Join(roots.Cache, "dc"), filepath.Join(roots.Logs, "dl"), filepath.Join(roots.Configuration, "de")} {
		if !exists(p) {
			t.Errorf("%s went with the stop", p)
		}
	}

	// systemctl clean's default: cache and runtime.
	if err := h.clean("dirs.service", "cache", "runtime"); err != nil {
		t.Fatal(err)
	}
	h.waitCleaned("dirs.service")
	if exists(filepath.Join(roots.Cache, "dc")) || !exists(filepath.Join(roots.State, "ds")) {
		t.Errorf("clean cache runtime: cache there %v, state there %v", exists(filepath.Join(roots.Cache, "dc")), exists(filepath.Join(roots.State, "ds")))
	}
	if a, s := h.state("dirs.service"); a != "inactive" || s != "dead" {
		t.Errorf("after clean: %s (%s)", a, s)
	}
	if err := h.clean("dirs.service", "all"); err != nil {
		t.Fatal(err)
	}
	h.waitCleaned("dirs.service")
	for _, p := range []string{filepath.Join(roots.State, "ds"), filepath.Join(roots.Logs, "dl"), filepath.Join(roots.Configuration, "de")} {
		if exists(p) {
			t.Errorf("clean all left %s", p)
		}
	}
	var result string
	h.do(func() { result = h.m.CleanResult("dirs.service") })
	if result != "success" {
		t.Errorf("CleanResult = %s", result)
	}

	for _, c := range []struct {
		unit string
		what []string
		want error
	}{
		{"t.target", []string{"all"}, ErrCleanNotSupported},
		{"plain.service", []string{"all"}, ErrNothingToClean},
		{"dirs.service", []string{"fdstore"}, ErrNothingToClean},
	} {
		if err := h.clean(c.unit, c.what...); !errors.Is(err, c.want) {
			t.Errorf("clean %s %v: %v, want %v", c.unit, c.what, err, c.want)
		}
	}
	if err := h.clean("dirs.service", "bogus"); err == nil || !strings.Contains(err.Error(), "invalid resource type: bogus") {
		t.Errorf("clean bogus: %v", err)
	}
	var nf *NotFoundError
	if err := h.clean("ghost.service", "all"); !errors.As(err, &nf) {
		t.Errorf("clean of an unknown unit: %v", err)
	}

	h.start("keep.service")
	h.stop("keep.service")
	if !exists(filepath.Join(roots.Runtime, "kept")) {
		t.Errorf("runtime-directory-preserve = yes: the directory went with the stop")
	}
}

// TestCleanHoldsJobsUntilDone asks for a clean and a start in one turn of
// the loop: the start must wait until the removal is over, else it would
// run in a directory being removed under it.
func TestCleanHoldsJobsUntilDone(t *testing.T) {
	h, roots := execDirHarness(t, map[string]string{
		"fill.service": `[service]
type = "oneshot"
state-directory = "big"
exec-start = ["/bin/sh", "-c", "test ! -e \"$STATE_DIRECTORY/marker\" && touch \"$STATE_DIRECTORY/fresh\""]
`,
	})
	dir := filepath.Join(roots.State, "big")
	for i := 0; i < 200; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 20; j++ {
			os.WriteFile(filepath.Join(sub, strconv.Itoa(j)), nil, 0o644)
		}
	}
	os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644)
	done := make(chan string, 1)
	h.do(func() {
		if err := h.m.CleanUnit("fill.service", []string{"state"}); err != nil {
			t.Errorf("clean: %v", err)
			return
		}
		if a := h.m.Unit("fill.service").active; a != StateMaintenance {
			t.Errorf("during clean the unit is %s, want maintenance", a)
		}
		j, err := h.m.Enqueue("fill.service", api.JobStart, api.ModeReplace)
		if err != nil {
			t.Errorf("start: %v", err)
			return
		}
		j.OnDone(func(j *Job) { done <- j.Result })
	})
	select {
	case r := <-done:
		if r != api.ResultDone {
			t.Errorf("start after clean: %s\n%s", r, h.logText())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the start never ran")
	}
	if !exists(filepath.Join(dir, "fresh")) || exists(filepath.Join(dir, "marker")) {
		t.Errorf("the start did not run in a fresh directory after the clean (fresh %v, marker %v)",
			exists(filepath.Join(dir, "fresh")), exists(filepath.Join(dir, "marker")))
	}
}

// FuzzParseCleanMask feeds arbitrary resource names (they come from D-Bus
// clients): an error names the bad one; a mask has only the five kinds.
func FuzzParseCleanMask(f *testing.F) {
	for _, s := range []string{"cache,runtime", "all", "state,logs,configuration", "fdstore", "bogus", "", ",", "all,bogus"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		what := strings.Split(list, ",")
		mask, err := ParseCleanMask(what)
		if err != nil {
			if mask != 0 || !strings.HasPrefix(err.Error(), "invalid resource type: ") {
				t.Fatalf("%q: mask %b with error %v", what, mask, err)
			}
			return
		}
		if mask>>numExecDirKinds != 0 {
			t.Fatalf("%q: mask %b has bits beyond the directory kinds", what, mask)
		}
		for _, w := range what {
			if w == "all" && mask != 1<<numExecDirKinds-1 {
				t.Fatalf("%q: all gave %b", what, mask)
			}
		}
	})
}

// TestExecDirectoryInTheWayFailsOnlyThatUnit: a file where a unit's
// directory should be fails that unit's start with a reason naming it;
// another unit starts as usual.
func TestExecDirectoryInTheWayFailsOnlyThatUnit(t *testing.T) {
	h, roots := execDirHarness(t, map[string]string{
		"blocked.service": "[service]\ntype = \"oneshot\"\nstate-directory = \"taken\"\nexec-start = \"/bin/true\"\n",
		"fine.service":    "[service]\ntype = \"oneshot\"\nstate-directory = \"free\"\nexec-start = \"/bin/true\"\n",
	})
	os.MkdirAll(roots.State, 0o755)
	if err := os.WriteFile(filepath.Join(roots.State, "taken"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, why := h.start("blocked.service")
	if res != api.ResultFailed || !strings.Contains(why+h.logText(), "state-directory taken") {
		t.Errorf("start with a file in the way: %s (%s)\n%s", res, why, h.logText())
	}
	if res, why := h.start("fine.service"); res != api.ResultDone || !exists(filepath.Join(roots.State, "free")) {
		t.Errorf("the other unit: %s (%s)", res, why)
	}
}

// TestRuntimeDirectoryPreserveRestart: with runtime-directory-preserve =
// "restart" the runtime directory (and what the unit left in it) survives
// a restart job, and goes with a stop.
func TestRuntimeDirectoryPreserveRestart(t *testing.T) {
	h, roots := execDirHarness(t, map[string]string{
		"r.service": `[service]
type = "oneshot"
remain-after-exit = true
runtime-directory = "r"
runtime-directory-preserve = "restart"
exec-start = ["/bin/sh", "-c", "echo x >> \"$RUNTIME_DIRECTORY/runs\""]
`,
	})
	runs := filepath.Join(roots.Runtime, "r", "runs")
	if r, why := h.start("r.service"); r != api.ResultDone {
		t.Fatalf("start: %s %s", r, why)
	}
	if r, why := h.job("r.service", api.JobRestart, api.ModeReplace); r != api.ResultDone {
		t.Fatalf("restart: %s %s", r, why)
	}
	if got := readFile(t, runs); got != "x\nx\n" {
		t.Errorf("after a restart the runtime directory holds %q, want both runs", got)
	}
	h.stop("r.service")
	if exists(filepath.Join(roots.Runtime, "r")) {
		t.Errorf("runtime-directory-preserve = restart: the directory outlived a stop")
	}
}
