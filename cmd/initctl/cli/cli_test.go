package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/units/api"
)

func TestListPlainAndJSON(t *testing.T) {
	m := newTestManager(t)
	out, errOut, code := m.runCLI("list")
	if code != 0 || errOut != "" {
		t.Fatalf("list: code %d, stderr %q", code, errOut)
	}
	want := "db.service loaded failed failed Database\nweb.service loaded active running Web server\n"
	if out != want {
		t.Fatalf("list off a terminal:\n%q\nwant\n%q", out, want)
	}
	out, _, code = m.runCLI("list-units", "--all", "-t", "target,slice", "--no-pager")
	if code != 0 || out != "idle.target loaded inactive dead Idle\n" {
		t.Fatalf("list --all --type: %d %q", code, out)
	}
	if a := m.lastArgs(api.MethodList).(api.ListArgs); !a.All || strings.Join(a.Types, ",") != "target,slice" {
		t.Fatalf("list args %+v", a)
	}
	m.runCLI("list", "--failed", "web*")
	if a := m.lastArgs(api.MethodList).(api.ListArgs); strings.Join(a.States, ",") != "failed" || strings.Join(a.Patterns, ",") != "web*" {
		t.Fatalf("list args %+v", a)
	}
	out, _, code = m.runCLI("-o", "json", "list")
	var units []api.UnitSummary
	if err := json.Unmarshal([]byte(out), &units); err != nil || code != 0 {
		t.Fatalf("list -o json: %v %d\n%s", err, code, out)
	}
	if len(units) != 2 || units[1].Name != "web.service" || units[1].MainPID != 4242 {
		t.Fatalf("json units %+v", units)
	}
	// An empty listing is still a JSON array.
	out, _, _ = m.runCLI("list", "--output=json", "--state=nothing")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty list json %q", out)
	}
}

func TestStatusExitCodes(t *testing.T) {
	m := newTestManager(t)
	out, _, code := m.runCLI("status", "web.service", "-n", "5")
	if code != 0 {
		t.Fatalf("status of an active unit: exit %d", code)
	}
	mustContain(t, "status web", out,
		"● web.service - Web server\n",
		"     Loaded: loaded (/etc/vigil/units/web.service; enabled)\n",
		"     Active: active (running) since Fri 2024-03-01 12:00:00 UTC; ",
		"   Main PID: 4242 (httpd)\n",
		"     CGroup: /vigil.slice/web.service\n             ├─4242 /usr/bin/httpd -f\n             └─4250 httpd-worker\n",
		"web.service[4242]: listening on :80\n")
	if a := m.lastArgs(api.MethodStatus).(api.UnitArgs); a.Lines != 5 {
		t.Fatalf("status -n 5 sent %+v", a)
	}
	out, _, code = m.runCLI("status", "db.service")
	if code != exitNotRunning {
		t.Fatalf("status of a failed unit: exit %d, want 3", code)
	}
	mustContain(t, "status db", out, "× db.service - Database", "Active: failed (Result: exit-code) since Fri 2024-03-01 12:01:00 UTC", "Main PID: 77 (code=exited, status=1)")
	m.loop.Call(context.Background(), func() { // the loop owns the units
		m.units["gone.service"] = &api.UnitStatus{UnitSummary: api.UnitSummary{Name: "gone.service", Load: "not-found", Active: "inactive"}}
	})
	if out, errOut, code := m.runCLI("status", "gone.service"); code != exitNoSuchUnit || out != "" || errOut != "Unit gone.service could not be found.\n" {
		t.Fatalf("status of a not-found unit: %d %q %q", code, out, errOut)
	}
	_, errOut, code := m.runCLI("status", "web.service", "nope.service")
	if code != exitNoSuchUnit || !strings.Contains(errOut, "Unit nope.service not found.") {
		t.Fatalf("status of an unknown unit: exit %d, stderr %q", code, errOut)
	}
	out, _, code = m.runCLI("status", "-o", "json", "web.service", "db.service")
	var sts []api.UnitStatus
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 2 || sts[1].Result != "exit-code" || code != exitNotRunning {
		t.Fatalf("status json: %v %d %s", err, code, out)
	}
}

func TestJobsWaitAndReport(t *testing.T) {
	m := newTestManager(t)
	out, errOut, code := m.runCLI("start", "good.service")
	if code != 0 || out != "" {
		t.Fatalf("start good: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Off a terminal every progress frame is a plain line on stderr.
	if errOut != "Starting Good...\ngood.service: start job 100 done (done)\n" {
		t.Fatalf("progress lines: %q", errOut)
	}
	_, errOut, code = m.runCLI("restart", "bad.service", "-q")
	if code != 1 || errOut != "Job for bad.service failed because the control process exited with error code.\nSee 'initctl status bad.service' and 'initctl logs bad.service' for details.\n" {
		t.Fatalf("restart bad: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = m.runCLI("start", "-q", "good.service", "db.service")
	if code != 1 || errOut != "A dependency job for db.service failed. See 'initctl logs' for details.\n" {
		t.Fatalf("dependency failure: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = m.runCLI("stop", "nope.service")
	// systemctl: a job on a unit that does not exist exits 5.
	if code != exitNotInstalled || errOut != "Failed to stop nope.service: Unit nope.service not found.\n" {
		t.Fatalf("stop unknown: exit %d, stderr %q", code, errOut)
	}
	if _, _, code = m.runCLI("start", "--no-block", "--job-mode=fail", "slow.service"); code != 0 {
		t.Fatalf("--no-block: exit %d", code)
	}
	if a := m.lastArgs(api.MethodJob).(api.JobArgs); !a.NoBlock || a.Mode != api.ModeFail || a.Type != api.JobStart {
		t.Fatalf("job args %+v", a)
	}
	m.runCLI("isolate", "-q", "idle.target")
	if a := m.lastArgs(api.MethodJob).(api.JobArgs); a.Mode != api.ModeIsolate || a.Type != api.JobStart || a.Units[0] != "idle.target" {
		t.Fatalf("isolate args %+v", a)
	}
	if _, errOut, code = m.runCLI("start", "--job-mode", "sideways", "good.service"); code != exitUsage || !strings.Contains(errOut, `unknown job mode "sideways"`) {
		t.Fatalf("bad job mode: %d %q", code, errOut)
	}
	out, _, code = m.runCLI("try-restart", "-o", "json", "good.service")
	var outcome api.JobOutcome
	if err := json.Unmarshal([]byte(out), &outcome); err != nil || code != 0 || outcome.Jobs[0].Result != "done" || outcome.Jobs[0].Type != api.JobTryRestart {
		t.Fatalf("job json: %v %d %s", err, code, out)
	}
}

func TestIsCommands(t *testing.T) {
	m := newTestManager(t)
	cases := []struct {
		args []string
		out  string
		code int
	}{
		{[]string{"is-active", "web.service", "idle.target"}, "active\ninactive\n", 0},
		{[]string{"is-active", "idle.target", "nope.service"}, "inactive\ninactive\n", 3},
		{[]string{"is-active", "-q", "web.service"}, "", 0},
		{[]string{"is-failed", "db.service"}, "failed\n", 0},
		{[]string{"is-failed", "web.service"}, "active\n", 1},
		{[]string{"is-enabled", "web.service"}, "enabled\n", 0},
		{[]string{"is-enabled", "db.service"}, "disabled\n", 1},
		{[]string{"is-enabled", "idle.target"}, "static\n", 0},
		{[]string{"is-enabled", "nope.service"}, "", 4},
	}
	for _, c := range cases {
		out, _, code := m.runCLI(c.args...)
		if out != c.out || code != c.code {
			t.Errorf("%v: got %q exit %d, want %q exit %d", c.args, out, code, c.out, c.code)
		}
	}
	out, _, _ := m.runCLI("is-active", "--output=json", "web.service")
	if strings.Join(strings.Fields(out), "") != `[{"unit":"web.service","state":"active"}]` {
		t.Fatalf("is-active json %s", out)
	}
}

func TestEnableDisableCatShow(t *testing.T) {
	m := newTestManager(t)
	out, _, code := m.runCLI("enable", "web.service")
	if code != 0 || out != "Created symlink /etc/vigil/units/multi-user.target.wants/web.service → /etc/vigil/units/web.service.\n" {
		t.Fatalf("enable: %d %q", code, out)
	}
	out, _, code = m.runCLI("disable", "--runtime", "web.service")
	if code != 0 || out != "Removed \"/etc/vigil/units/multi-user.target.wants/web.service\".\n" {
		t.Fatalf("disable: %d %q", code, out)
	}
	if a := m.lastArgs(api.MethodDisable).(api.UnitsArgs); !a.Runtime {
		t.Fatalf("disable --runtime sent %+v", a)
	}
	// enable --now starts the units too.
	_, _, code = m.runCLI("enable", "--now", "-q", "good.service")
	if a := m.lastArgs(api.MethodJob).(api.JobArgs); code != 0 || a.Type != api.JobStart || a.Units[0] != "good.service" {
		t.Fatalf("enable --now: %d %+v", code, a)
	}

	out, _, code = m.runCLI("cat", "web.service")
	want := "# /etc/vigil/units/web.service\n[unit]\ndescription = \"Web server\"\n\n# /etc/vigil/units/web.service.d/override.toml\n[service]\nnice = 5\n"
	if code != 0 || out != want {
		t.Fatalf("cat:\n%q\nwant\n%q", out, want)
	}

	out, _, _ = m.runCLI("show", "web.service")
	if out != "Id=web.service\nActiveState=active\nSubState=running\n" { // empty StatusText hidden
		t.Fatalf("show: %q", out)
	}
	out, _, _ = m.runCLI("show", "web.service", "--all")
	if !strings.Contains(out, "StatusText=\n") {
		t.Fatalf("show --all: %q", out)
	}
	out, _, _ = m.runCLI("show", "-p", "ActiveState,SubState", "--value", "web.service", "db.service")
	if out != "active\nrunning\nfailed\nfailed\n" {
		t.Fatalf("show -p --value: %q", out)
	}
	out, _, _ = m.runCLI("show")
	if out != "Version=test\n" {
		t.Fatalf("show of the manager: %q", out)
	}
	out, _, _ = m.runCLI("show", "-o", "json", "-p", "Id", "web.service")
	if strings.Join(strings.Fields(out), "") != `{"Id":"web.service"}` {
		t.Fatalf("show json: %q", out)
	}
}

func TestKillResetReloadShutdown(t *testing.T) {
	m := newTestManager(t)
	if _, _, code := m.runCLI("kill", "-s", "9", "--kill-whom=main", "web.service"); code != 0 {
		t.Fatalf("kill exit %d", code)
	}
	if a := m.lastArgs(api.MethodKill).(api.KillArgs); a.Signal != "SIGKILL" || a.Whom != "main" || a.Unit != "web.service" {
		t.Fatalf("kill args %+v", a)
	}
	m.runCLI("kill", "--signal=hup", "web.service")
	if a := m.lastArgs(api.MethodKill).(api.KillArgs); a.Signal != "SIGHUP" || a.Whom != "" {
		t.Fatalf("kill args %+v", a)
	}
	if _, errOut, code := m.runCLI("kill", "-s", "SIGNOPE", "web.service"); code != exitUsage || !strings.Contains(errOut, "unknown signal") {
		t.Fatalf("bad signal: %d %q", code, errOut)
	}
	if _, errOut, code := m.runCLI("kill", "--kill-whom=everyone", "web.service"); code != exitUsage || !strings.Contains(errOut, "main, control or all") {
		t.Fatalf("bad whom: %d %q", code, errOut)
	}
	m.runCLI("reset-failed")
	if a := m.lastArgs(api.MethodResetFailed).(api.UnitsArgs); len(a.Units) != 0 {
		t.Fatalf("reset-failed args %+v", a)
	}
	out, errOut, code := m.runCLI("daemon-reload")
	if code != 0 || out != "" || !strings.Contains(errOut, "did you mean 'restart-sec'") {
		t.Fatalf("daemon-reload: %d %q %q", code, out, errOut)
	}
	m.runCLI("reboot")
	if a := m.lastArgs(api.MethodShutdown).(api.ShutdownArgs); a.Action != "reboot" {
		t.Fatalf("reboot args %+v", a)
	}
	// Invoked as poweroff (a link to the binary), with the socket from the
	// environment.
	t.Setenv(SocketEnv, m.socket)
	var out2, err2 strings.Builder
	if code := run(context.Background(), []string{"/sbin/poweroff", "-f"}, &out2, &err2); code != 0 {
		t.Fatalf("poweroff: %d %s", code, err2.String())
	}
	if a := m.lastArgs(api.MethodShutdown).(api.ShutdownArgs); a.Action != "poweroff" {
		t.Fatalf("poweroff args %+v", a)
	}
	out, _, _ = m.runCLI("list-jobs")
	if out != "7 slow.service start running\n8 web.service restart waiting\n" {
		t.Fatalf("list-jobs %q", out)
	}
	out, _, _ = m.runCLI("version")
	if out != "vigil test, init (PID 1), pid 1\n" {
		t.Fatalf("version %q", out)
	}
}

func TestLogs(t *testing.T) {
	m := newTestManager(t)
	out, _, code := m.runCLI("logs", "web.service", "-n", "2", "--since", "10min ago")
	if code != 0 {
		t.Fatalf("logs exit %d", code)
	}
	l1 := formatLogLine(api.LogLine{Time: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), Unit: "web.service", PID: 4242, Text: "one"})
	if !strings.HasPrefix(out, l1+"\n") || !strings.HasSuffix(out, "web.service[4242]: two\n") {
		t.Fatalf("logs output %q", out)
	}
	a := m.lastArgs(api.MethodLogs).(api.LogsArgs)
	if a.Unit != "web.service" || a.Lines != 2 || a.Follow || time.Since(a.Since) < 10*time.Minute || time.Since(a.Since) > 11*time.Minute {
		t.Fatalf("logs args %+v", a)
	}
	if out, _, _ := m.runCLI("logs", "-o", "cat", "web.service"); out != "one\ntwo\n" {
		t.Fatalf("logs -o cat: %q", out)
	}
	if _, errOut, code := m.runCLI("logs", "--since", "last tuesday"); code != exitUsage || !strings.Contains(errOut, "--since") {
		t.Fatalf("bad --since: %d %q", code, errOut)
	}
	// -f streams until interrupted; Ctrl-C is a normal end, and the
	// manager sees the client leave.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, _, code = m.runCLIUntilLines(ctx, cancel, 4, "logs", "-f", "web.service", "-o", "json")
	if code != 0 {
		t.Fatalf("logs -f exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 {
		t.Fatalf("logs -f printed %d lines", len(lines))
	}
	var l api.LogLine
	if err := json.Unmarshal([]byte(lines[2]), &l); err != nil || l.Text != "more 1" {
		t.Fatalf("logs -f json line %q: %v", lines[2], err)
	}
	if a := m.lastArgs(api.MethodLogs).(api.LogsArgs); !a.Follow || a.Lines != 10 {
		t.Fatalf("logs -f args %+v", a)
	}
	waitStream(t, m, "logs done")
}

func waitStream(t *testing.T, m *testManager, want string) {
	t.Helper()
	select {
	case got := <-m.streams:
		if got != want {
			t.Fatalf("stream end %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the manager never saw the client leave (%s)", want)
	}
}

func TestObserveEmitObservers(t *testing.T) {
	m := newTestManager(t)
	out, _, code := m.runCLI("observe", "stop-after=3")
	if code != 0 {
		t.Fatalf("observe exit %d", code)
	}
	want := "UEVENT add [12.345678] DEVNAME=vdb SUBSYSTEM=block\nUEVENT add [12.345678] DEVNAME=vdc SUBSYSTEM=block\nUEVENT add [12.345678] DEVNAME=vdd SUBSYSTEM=block\n"
	if out != want {
		t.Fatalf("observe:\n%q\nwant\n%q", out, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, code := m.runCLIUntilLines(ctx, cancel, 1, "monitor", "source=uevent", "SUBSYSTEM=block"); code != 0 {
		t.Fatalf("interrupted observe exit %d", code)
	}
	if a := m.lastArgs(api.MethodObserve).(api.ObserveArgs); a.Filter != "source=uevent SUBSYSTEM=block" {
		t.Fatalf("observe args %+v", a)
	}
	waitStream(t, m, "observe done")
	if _, errOut, code := m.runCLI("observe", "=oops"); code != exitUsage || !strings.Contains(errOut, "filter term") {
		t.Fatalf("bad filter: %d %q", code, errOut)
	}

	if _, _, code := m.runCLI("emit", "backup-done", "host=a", "size=1=2"); code != 0 {
		t.Fatalf("emit exit %d", code)
	}
	if a := m.lastArgs(api.MethodEmit).(api.EmitArgs); a.Kind != "backup-done" || a.Attrs["host"] != "a" || a.Attrs["size"] != "1=2" {
		t.Fatalf("emit args %+v", a)
	}
	if _, errOut, code := m.runCLI("emit", "x", "novalue"); code != exitUsage || !strings.Contains(errOut, "KEY=VALUE") {
		t.Fatalf("emit bad attr: %d %q", code, errOut)
	}

	out, _, _ = m.runCLI("observers")
	want = "observer 1 units control 12 0 - source=control\nobserver 2 cli observe 3 1 - (everything)\nobserver 3 guard watch 5 0 2 source=fanotify\nsource control 12 0\nsource uevent 40 2\n"
	if out != want {
		t.Fatalf("observers:\n%q\nwant\n%q", out, want)
	}
}

func TestUsageAndErrors(t *testing.T) {
	m := newTestManager(t)
	out, _, code := m.runCLI("--help")
	if code != 0 || !strings.Contains(out, "is-active UNIT...") || !strings.Contains(out, "--socket=PATH") {
		t.Fatalf("--help: %d\n%s", code, out)
	}
	out, _, code = m.runCLI("start", "--help")
	if code != 0 || !strings.Contains(out, "--no-block") || !strings.Contains(out, "initctl start UNIT...") {
		t.Fatalf("start --help: %d\n%s", code, out)
	}
	out, _, _ = m.runCLI("help", "logs")
	if !strings.Contains(out, "--since=TIME") {
		t.Fatalf("help logs:\n%s", out)
	}
	_, errOut, code := m.runCLI("strat", "web.service")
	if code != exitUsage || !strings.Contains(errOut, "did you mean 'start'") {
		t.Fatalf("typo: %d %q", code, errOut)
	}
	_, errOut, code = m.runCLI("list", "--tpye=service")
	if code != exitUsage || !strings.Contains(errOut, "did you mean '--type'") {
		t.Fatalf("bad option: %d %q", code, errOut)
	}
	if _, errOut, code = m.runCLI("start"); code != exitUsage || !strings.Contains(errOut, "too few arguments") {
		t.Fatalf("start without units: %d %q", code, errOut)
	}
	if _, _, code = m.runCLI(); code != exitUsage {
		t.Fatalf("no command: %d", code)
	}
	if _, errOut, code = m.runCLI("-o", "yaml", "list"); code != exitUsage || !strings.Contains(errOut, "unknown output format") {
		t.Fatalf("bad output: %d %q", code, errOut)
	}
	var o, e strings.Builder
	code = run(context.Background(), []string{"initctl", "--socket", filepath.Join(t.TempDir(), "none.sock"), "list"}, &o, &e)
	if code != exitFailure || !strings.Contains(e.String(), "cannot reach the manager") {
		t.Fatalf("no manager: %d %q", code, e.String())
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.service")
	os.WriteFile(good, []byte("[unit]\ndescription = \"Good\"\n\n[service]\nexec-start = [\"/bin/true\"]\n"), 0o644)
	bad := filepath.Join(dir, "bad.service")
	os.WriteFile(bad, []byte("[unit]\ndescription = \"Bad\"\n\n[service]\nexec-start = [\"/bin/true\"\n"), 0o644)
	loose := filepath.Join(dir, "loose.service")
	os.WriteFile(loose, []byte("[unit]\ndescription = \"x\"\n[service]\nexec-start = \"/bin/true\"\nrestart-secs = \"1s\"\n"), 0o644)
	badName := filepath.Join(dir, "noext")
	os.WriteFile(badName, []byte("[unit]\n"), 0o644)

	var o, e strings.Builder
	if code := run(context.Background(), []string{"initctl", "check", good}, &o, &e); code != 0 || e.String() != "" {
		t.Fatalf("check good: %d %q", code, e.String())
	}
	e.Reset()
	code := run(context.Background(), []string{"initctl", "check", good, bad, loose, badName, filepath.Join(dir, "missing.service")}, &o, &e)
	if code != exitFailure {
		t.Fatalf("check bad: exit %d", code)
	}
	mustContain(t, "check", e.String(), bad+":5:26: invalid TOML: expected a comma", loose+":5:1: [service] restart-secs: unknown key (did you mean 'restart-sec'?)", badName+": invalid unit name \"noext\"", "missing.service: cannot read")
	if strings.Contains(e.String(), good) {
		t.Fatalf("good file reported: %s", e.String())
	}
}

// runCLIUntilLines runs a streaming command and interrupts it (cancel, as
// Ctrl-C) once it has printed n lines: a fixed delay before the interrupt
// may end it before the first line on a loaded machine. A stream that
// never prints them is interrupted after a minute and fails the caller's
// checks.
func (m *testManager) runCLIUntilLines(ctx context.Context, cancel context.CancelFunc, n int, args ...string) (stdout, stderr string, code int) {
	defer time.AfterFunc(time.Minute, cancel).Stop()
	out := &linesThenCancel{n: n, cancel: cancel}
	var errb strings.Builder
	code = run(ctx, append([]string{"initctl", "--socket", m.socket}, args...), out, &errb)
	return out.String(), errb.String(), code
}

type linesThenCancel struct {
	mu     sync.Mutex
	b      strings.Builder
	n      int
	cancel context.CancelFunc
}

func (w *linesThenCancel) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Count(w.b.String(), "\n") >= w.n {
		w.cancel()
	}
	return len(p), nil
}

func (w *linesThenCancel) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
