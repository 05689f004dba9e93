package units

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
)

// stampService runs a script that sleeps and records when it began and
// ended, in nanoseconds, to DIR/NAME.
func stampService(name, sleep, unitExtra string) string {
	cmd := `exec-start = ["/bin/sh", "-c", "s=$$(date +%%s%%N); sleep ` + sleep + `; e=$$(date +%%s%%N); echo $$s $$e > @DIR@/` + name + `"]`
	return "[unit]\n" + unitExtra + "\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\n" + cmd + "\n"
}

func readStamp(t *testing.T, h *harness, name string) (start, end int64) {
	t.Helper()
	f := strings.Fields(readFile(t, h.path(name)))
	if len(f) != 2 {
		t.Fatalf("stamp %s: %q", name, f)
	}
	start, _ = strconv.ParseInt(f[0], 10, 64)
	end, _ = strconv.ParseInt(f[1], 10, 64)
	return
}

// meetService is stampService's script that, before it ends, waits (at
// most 60 s) until its peer has begun: two of them both finish only if
// they run at the same time, however loaded the host is.
func meetService(name, peer string) string {
	cmd := `exec-start = ["/bin/sh", "-c", "s=$$(date +%%s%%N); : > @DIR@/` + name + `.up; i=0; while [ ! -e @DIR@/` + peer + `.up ]; do i=$$((i+1)); [ $$i -lt 1200 ] || exit 1; sleep 0.05; done; e=$$(date +%%s%%N); echo $$s $$e > @DIR@/` + name + `"]`
	return "[service]\ntype = \"oneshot\"\nremain-after-exit = true\n" + cmd + "\n"
}

func TestOrderedAndParallelStart(t *testing.T) {
	h := newHarness(t, map[string]string{
		"a.service": meetService("a", "b"),
		"b.service": meetService("b", "a"),
		"c.service": stampService("c", "0", `requires = ["a.service", "b.service"]
after = ["a.service", "b.service"]`),
	})
	if res, why := h.start("c.service"); res != api.ResultDone {
		t.Fatalf("start c: %s (%s)\n%s", res, why, h.logText())
	}
	aS, aE := readStamp(t, h, "a")
	bS, bE := readStamp(t, h, "b")
	cS, _ := readStamp(t, h, "c")
	if !(aS < bE && bS < aE) {
		t.Errorf("a [%d,%d] and b [%d,%d] did not run in parallel", aS, aE, bS, bE)
	}
	if cS < aE || cS < bE {
		t.Errorf("c started at %d before a (%d) and b (%d) ended", cS, aE, bE)
	}
	for _, n := range []string{"a.service", "b.service", "c.service"} {
		if a, s := h.state(n); a != "active" || s != "exited" {
			t.Errorf("%s: %s/%s, want active/exited", n, a, s)
		}
	}
}

func TestRequiresVersusWants(t *testing.T) {
	h := newHarness(t, map[string]string{
		"fail.service": "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/false\"\n",
		"needs.service": `[unit]
requires = ["fail.service"]
after = ["fail.service"]
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
		"likes.service": `[unit]
wants = ["fail.service"]
after = ["fail.service"]
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
	})
	res, why := h.start("needs.service")
	if res != api.ResultDependency {
		t.Errorf("needs.service: result %s (%s), want dependency", res, why)
	}
	if a, _ := h.state("needs.service"); a != "inactive" {
		t.Errorf("needs.service is %s, want inactive", a)
	}
	if a, _ := h.state("fail.service"); a != "failed" {
		t.Errorf("fail.service is %s, want failed", a)
	}
	h.do(func() { h.m.ResetFailed(nil) })
	if res, why := h.start("likes.service"); res != api.ResultDone {
		t.Errorf("likes.service: result %s (%s), want done", res, why)
	}
	if a, _ := h.state("likes.service"); a != "active" {
		t.Errorf("likes.service is %s, want active", a)
	}
}

func TestConflictsStopTheOther(t *testing.T) {
	h := newHarness(t, map[string]string{
		"one.service": "[service]\nexec-start = \"/bin/sleep 60\"\n",
		"two.service": "[unit]\nconflicts = [\"one.service\"]\n[service]\nexec-start = \"/bin/sleep 60\"\n",
	})
	if res, _ := h.start("one.service"); res != api.ResultDone {
		t.Fatalf("start one: %s", res)
	}
	pid, _ := strconv.Atoi(h.prop("one.service", "MainPID"))
	if !pidAlive(pid) {
		t.Fatalf("one's main pid %d not alive", pid)
	}
	if res, _ := h.start("two.service"); res != api.ResultDone {
		t.Fatalf("start two: %s", res)
	}
	if a, _ := h.state("one.service"); a != "inactive" {
		t.Errorf("one.service is %s after two started, want inactive", a)
	}
	time.Sleep(50 * time.Millisecond)
	if pidAlive(pid) {
		t.Errorf("one's process %d still alive", pid)
	}
}

func TestOrderingCycleBroken(t *testing.T) {
	h := newHarness(t, map[string]string{
		"loop.target": "[unit]\nwants = [\"x.service\", \"y.service\"]\n",
		"x.service":   "[unit]\nafter = [\"y.service\"]\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
		"y.service":   "[unit]\nafter = [\"x.service\"]\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
	})
	res, why := h.start("loop.target")
	if res != api.ResultDone {
		t.Fatalf("loop.target: %s (%s)", res, why)
	}
	log := h.logText()
	if !strings.Contains(log, "Found ordering cycle") {
		t.Errorf("no cycle warning in log:\n%s", log)
	}
	xa, _ := h.state("x.service")
	ya, _ := h.state("y.service")
	if (xa == "active") == (ya == "active") {
		t.Errorf("exactly one of x (%s) and y (%s) should have been dropped", xa, ya)
	}
}

func TestIsolate(t *testing.T) {
	h := newHarness(t, map[string]string{
		"work.target":  "[unit]\nwants = [\"busy.service\"]\nallow-isolate = true\n",
		"quiet.target": "[unit]\nallow-isolate = true\n",
		"busy.service": "[service]\nexec-start = \"/bin/sleep 60\"\n",
	})
	if res, _ := h.start("work.target"); res != api.ResultDone {
		t.Fatal("start work.target")
	}
	h.waitState("busy.service", "active", 30*time.Second)
	if res, why := h.job("quiet.target", api.JobStart, api.ModeIsolate); res != api.ResultDone {
		t.Fatalf("isolate quiet.target: %s (%s)", res, why)
	}
	// Isolate queued stop jobs for everything else; they finish on their own.
	h.waitState("busy.service", "inactive", 30*time.Second)
	h.waitState("work.target", "inactive", 30*time.Second)
	if a, _ := h.state("quiet.target"); a != "active" {
		t.Errorf("quiet.target is %s", a)
	}
}

func TestForkingDaemonWithPIDFileIsTrackedAndKilled(t *testing.T) {
	// The daemon double-forks, leaves its session, and writes its PID; as
	// daemon(7) asks, the original process exits once the PID file is
	// written (a fixed sleep lost that race on a loaded machine).
	h := newHarness(t, map[string]string{
		"daemon.service": `[service]
type = "forking"
pid-file = "@DIR@/daemon.pid"
exec-start = ["/bin/sh", "-c", "(setsid /bin/sh -c 'echo $$$$ > @DIR@/daemon.pid; exec sleep 60' &) ; while [ ! -s @DIR@/daemon.pid ]; do sleep 0.05; done"]
timeout-stop = "2s"
`,
	})
	if res, why := h.start("daemon.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, h.path("daemon.pid"))))
	if got := h.prop("daemon.service", "MainPID"); got != strconv.Itoa(pid) {
		t.Fatalf("MainPID %s, want %d from the pid file", got, pid)
	}
	if a, s := h.state("daemon.service"); a != "active" || s != "running" {
		t.Fatalf("state %s/%s", a, s)
	}
	if res, _ := h.stop("daemon.service"); res != api.ResultDone {
		t.Fatal("stop failed")
	}
	time.Sleep(50 * time.Millisecond)
	if pidAlive(pid) {
		t.Errorf("daemon %d survived stop", pid)
	}
	// Killing the daemon from outside is noticed as the main process dying.
	os.Remove(h.path("daemon.pid")) // the new daemon writes its own
	h.start("daemon.service")
	pid, _ = strconv.Atoi(strings.TrimSpace(readFile(t, h.path("daemon.pid"))))
	if err := killPID(pid); err != nil {
		t.Fatal(err)
	}
	h.waitState("daemon.service", "failed", 30*time.Second)
	if r := h.prop("daemon.service", "Result"); r != "signal" {
		t.Errorf("result %s after SIGKILL of the main process, want signal", r)
	}
}

func TestCrashRestartBackoffStartLimit(t *testing.T) {
	h := newHarness(t, map[string]string{
		"crash.service": `[unit]
start-limit-burst = 4
start-limit-interval = "30s"
[service]
exec-start = ["/bin/sh", "-c", "date +%%s%%N >> @DIR@/starts; exit 3"]
restart = "on-failure"
restart-sec = "100ms"
restart-steps = 3
restart-max-delay = "800ms"
`,
	})
	h.start("crash.service")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h.prop("crash.service", "Result") == "start-limit-hit" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := h.prop("crash.service", "Result"); r != "start-limit-hit" {
		t.Fatalf("result %s, want start-limit-hit\n%s", r, h.logText())
	}
	if a, _ := h.state("crash.service"); a != "failed" {
		t.Errorf("state %s, want failed", a)
	}
	var starts []int64
	for _, f := range strings.Fields(readFile(t, h.path("starts"))) {
		n, _ := strconv.ParseInt(f, 10, 64)
		starts = append(starts, n)
	}
	if len(starts) != 4 {
		t.Fatalf("%d starts, want 4 (the burst)", len(starts))
	}
	// The scheduled delays grow exponentially from restart-sec towards
	// restart-max-delay: 100ms, 200ms, 400ms, 800ms.
	var delays []string
	for _, line := range strings.Split(h.logText(), "\n") {
		if i := strings.Index(line, "Scheduled restart in "); i >= 0 {
			delays = append(delays, strings.Fields(line[i+len("Scheduled restart in "):])[0])
		}
	}
	if got := strings.Join(delays, " "); got != "100ms 200ms 400ms 800ms" {
		t.Errorf("restart delays %q, want \"100ms 200ms 400ms 800ms\" (the fourth restart hits the start limit)", got)
	}
	// And the starts really were spaced at least that much.
	for i := 1; i < len(starts); i++ {
		if gap := time.Duration(starts[i] - starts[i-1]); gap < 100*time.Millisecond<<(i-1) {
			t.Errorf("start %d came %v after the previous one", i, gap)
		}
	}
}

func TestStopTimeoutEscalatesToSIGKILL(t *testing.T) {
	h := newHarness(t, map[string]string{
		"stubborn.service": `[service]
exec-start = ["/bin/sh", "-c", "trap '' TERM; echo $$$$ > @DIR@/pid; while :; do sleep 0.05; done"]
timeout-stop = "500ms"
`,
	})
	h.start("stubborn.service")
	// The pid file is written once the TERM trap is set.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(h.path("pid")); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	begin := time.Now()
	if res, _ := h.stop("stubborn.service"); res != api.ResultDone {
		t.Fatalf("stop: %s", res)
	}
	took := time.Since(begin)
	if took < 500*time.Millisecond {
		t.Errorf("stopped after %v: SIGTERM should have been ignored until timeout-stop", took)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, h.path("pid"))))
	if pidAlive(pid) {
		t.Errorf("process %d survived SIGKILL", pid)
	}
	if r := h.prop("stubborn.service", "Result"); r != "timeout" {
		t.Errorf("result %s, want timeout", r)
	}
	if !strings.Contains(h.logText(), "timed out. Killing") {
		t.Errorf("no escalation in the log:\n%s", h.logText())
	}
}

func TestOneshotRemainAfterExit(t *testing.T) {
	h := newHarness(t, map[string]string{
		"stay.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/sh\", \"-c\", \"echo ran >> @DIR@/stay\"]\n",
		"go.service":   "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"echo ran >> @DIR@/go\"]\n",
	})
	if res, _ := h.start("stay.service"); res != api.ResultDone {
		t.Fatal("start stay")
	}
	if a, s := h.state("stay.service"); a != "active" || s != "exited" {
		t.Errorf("stay: %s/%s, want active/exited", a, s)
	}
	if res, _ := h.start("go.service"); res != api.ResultDone {
		t.Fatal("start go")
	}
	if a, s := h.state("go.service"); a != "inactive" || s != "dead" {
		t.Errorf("go: %s/%s, want inactive/dead", a, s)
	}
	// Starting an active oneshot again runs nothing.
	h.start("stay.service")
	if got := readFile(t, h.path("stay")); got != "ran\n" {
		t.Errorf("stay ran %q", got)
	}
}

func TestTemplateInstancesAndDropIns(t *testing.T) {
	h := newHarness(t, map[string]string{
		"greet@.service":                   "[unit]\ndescription = \"Greeter for %i\"\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/sh\", \"-c\", \"echo ${GREETING} %i > @DIR@/%i\"]\nenvironment = { GREETING = \"hello\" }\n",
		"greet@.service.d/10-env.toml":     "[service]\nenvironment = { GREETING = \"hi\" }\n",
		"greet@bob.service.d/20-desc.toml": "[unit]\ndescription = \"Bob's greeter\"\n",
	})
	for _, inst := range []string{"alice", "bob"} {
		if res, why := h.start("greet@" + inst + ".service"); res != api.ResultDone {
			t.Fatalf("start %s: %s (%s)\n%s", inst, res, why, h.logText())
		}
		if got := strings.TrimSpace(readFile(t, h.path(inst))); got != "hi "+inst {
			t.Errorf("%s wrote %q, want %q", inst, got, "hi "+inst)
		}
	}
	if d := h.prop("greet@alice.service", "Description"); d != "Greeter for alice" {
		t.Errorf("alice description %q", d)
	}
	if d := h.prop("greet@bob.service", "Description"); d != "Bob's greeter" {
		t.Errorf("bob description %q", d)
	}
}

func TestDaemonReload(t *testing.T) {
	h := newHarness(t, map[string]string{
		"keep.service": "[service]\nexec-start = \"/bin/sleep 60\"\n",
	})
	h.start("keep.service")
	pid := h.prop("keep.service", "MainPID")
	h.write(map[string]string{
		"keep.service": "[unit]\ndescription = \"Changed\"\n[service]\nexec-start = \"/bin/sleep 60\"\n",
		"new.service":  "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n",
	})
	if got := h.prop("keep.service", "NeedDaemonReload"); got != "yes" {
		t.Errorf("NeedDaemonReload %q after the file changed, want yes", got)
	}
	var res api.ReloadResult
	h.do(func() { res = h.m.Reload() })
	if got := h.prop("keep.service", "NeedDaemonReload"); got != "no" {
		t.Errorf("NeedDaemonReload %q after daemon-reload, want no", got)
	}
	if strings.Join(res.Added, " ") != "new.service" {
		t.Errorf("added %v", res.Added)
	}
	if strings.Join(res.Changed, " ") != "keep.service" {
		t.Errorf("changed %v", res.Changed)
	}
	if got := h.prop("keep.service", "MainPID"); got != pid {
		t.Errorf("reload restarted keep.service: pid %s -> %s", pid, got)
	}
	if d := h.prop("keep.service", "Description"); d != "Changed" {
		t.Errorf("description %q after reload", d)
	}
	if r, _ := h.start("new.service"); r != api.ResultDone {
		t.Errorf("new unit did not start after reload: %s", r)
	}
}

func TestBrokenUnitDoesNotStopOthers(t *testing.T) {
	h := newHarness(t, map[string]string{
		"good.service":  "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
		"bad.service":   "[service]\ntype = \"oneshot\"\nrestart-secs = \"1s\"\nexec-start = \"/bin/true\"\n",
		"worse.service": "[service\nexec-start = \n",
		"all.target":    "[unit]\nwants = [\"good.service\", \"bad.service\", \"worse.service\"]\n",
	})
	if res, why := h.start("all.target"); res != api.ResultDone {
		t.Fatalf("all.target: %s (%s)", res, why)
	}
	if a, _ := h.state("good.service"); a != "active" {
		t.Errorf("good.service %s", a)
	}
	var load, lerr string
	h.do(func() {
		u := h.m.Unit("bad.service")
		load, lerr = u.LoadState, u.LoadError
	})
	if load != LoadBadSetting || !strings.Contains(lerr, "bad.service:3:1") || !strings.Contains(lerr, "did you mean 'restart-sec'") {
		t.Errorf("bad.service: %s: %s", load, lerr)
	}
	problems := strings.Join(h.m.Problems(), "\n")
	if !strings.Contains(problems, "worse.service:") || !strings.Contains(problems, "invalid TOML") {
		t.Errorf("worse.service's TOML error not reported with its position:\n%s", problems)
	}
}

// TestListPatternsHideInactiveUnlessAll: as systemctl, a pattern narrows
// the listing but does not bring back inactive units; --all and --state do.
func TestListPatternsHideInactiveUnlessAll(t *testing.T) {
	h := newHarness(t, map[string]string{
		"web-a.service": "[service]\nexec-start = \"/bin/sleep 60\"\n",
		"web-b.service": "[service]\nexec-start = \"/bin/sleep 60\"\n",
	})
	if r, why := h.start("web-a.service"); r != api.ResultDone {
		t.Fatalf("start web-a.service: %s %s", r, why)
	}
	list := func(args api.ListArgs) string {
		var rows []api.UnitSummary
		h.do(func() {
			h.m.LoadUnit("web-b.service")
			rows = h.m.List(args)
		})
		var names []string
		for _, r := range rows {
			names = append(names, r.Name)
		}
		return strings.Join(names, " ")
	}
	if got := list(api.ListArgs{Patterns: []string{"web-*"}}); got != "web-a.service" {
		t.Errorf("list web-*: %q, want only the active web-a.service", got)
	}
	if got := list(api.ListArgs{Patterns: []string{"web-*"}, All: true}); got != "web-a.service web-b.service" {
		t.Errorf("list --all web-*: %q", got)
	}
	if got := list(api.ListArgs{Patterns: []string{"web-*"}, States: []string{"inactive"}}); got != "web-b.service" {
		t.Errorf("list --state inactive web-*: %q", got)
	}
}
