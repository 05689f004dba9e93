package dbus

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// moreUnits adds units with a slow dependency and start-pre commands.
func moreUnits() map[string]string {
	files := testUnits()
	files["slow.service"] = "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/sleep 30\"\n"
	files["top.service"] = "[unit]\nrequires = [\"slow.service\"]\nafter = [\"slow.service\"]\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n"
	files["pre.service"] = "[unit]\ndescription = \"Has start-pre\"\n[service]\nexec-start-pre = [\"/bin/true first\", \"-/bin/false\"]\nexec-start = \"/bin/sleep 1000\"\n"
	files["inst.service"] = "[service]\nexec-start = \"/bin/sleep 1000\"\n[install]\nwanted-by = [\"test.target\"]\n"
	return files
}

func TestSystemctlCancel(t *testing.T) {
	h := newProcHarness(t, moreUnits())
	out, code := h.systemctl("start", "--no-block", "top.service")
	expectCode(t, "start --no-block top.service", out, code, 0)
	out, code = h.systemctl("list-jobs")
	expectCode(t, "list-jobs", out, code, 0)
	if !strings.Contains(out, "top.service") || !strings.Contains(out, "slow.service") {
		t.Fatalf("list-jobs lacks the jobs:\n%s", out)
	}
	id := regexp.MustCompile(`(?m)^\s*(\d+)\s+top\.service`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no job ID for top.service in:\n%s", out)
	}
	out, code = h.systemctl("cancel", id[1])
	expectCode(t, "cancel "+id[1], out, code, 0)
	out, _ = h.systemctl("list-jobs")
	if strings.Contains(out, "top.service") || !strings.Contains(out, "slow.service") {
		t.Errorf("after canceling top's job, list-jobs shows:\n%s", out)
	}
	// No argument: every job (ClearJobs).
	out, code = h.systemctl("cancel")
	expectCode(t, "cancel", out, code, 0)
	out, _ = h.systemctl("list-jobs")
	if !strings.Contains(out, "No jobs running.") {
		t.Errorf("after cancel, list-jobs shows:\n%s", out)
	}
	out, code = h.systemctl("cancel", "99999")
	if code == 0 || !strings.Contains(out, "99999") {
		t.Errorf("cancel of an unknown job: exit %d:\n%s", code, out)
	}
}

func TestSystemctlCancelBlockingStartReportsCanceled(t *testing.T) {
	h := newProcHarness(t, moreUnits())
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		out, code := h.systemctl("start", "top.service")
		done <- result{out, code}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := h.systemctl("list-jobs")
		if strings.Contains(out, "top.service") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("top's job never appeared:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, code := h.systemctl("cancel")
	expectCode(t, "cancel", out, code, 0)
	r := <-done
	if r.code == 0 || !strings.Contains(r.out, "top.service") {
		t.Errorf("blocking start of a canceled job: exit %d:\n%s", r.code, r.out)
	}
}

func TestSystemctlMaskUnmask(t *testing.T) {
	h := newProcHarness(t, moreUnits())
	// A unit whose file lives elsewhere: mask covers it from the first
	// unit directory.
	other := filepath.Join(h.dir, "other")
	os.MkdirAll(other, 0o755)
	os.Rename(filepath.Join(h.units, "once.service"), filepath.Join(other, "once.service"))
	if err := os.Symlink(filepath.Join(other, "once.service"), filepath.Join(h.units, "once.service")); err != nil {
		t.Fatal(err)
	}
	h.systemctl("daemon-reload")
	out, code := h.systemctl("mask", "once.service")
	expectCode(t, "mask", out, code, 0)
	link := filepath.Join(h.units, "once.service")
	if target, err := os.Readlink(link); err != nil || target != "/dev/null" {
		t.Fatalf("mask left %s -> %q (%v); output:\n%s", link, target, err, out)
	}
	out, code = h.systemctl("start", "once.service")
	if code == 0 || !strings.Contains(out, "Unit once.service is masked.") {
		t.Errorf("start of a masked unit: exit %d:\n%s", code, out)
	}
	out, code = h.systemctl("is-enabled", "once.service")
	if code == 0 || strings.TrimSpace(out) != "masked" {
		t.Errorf("is-enabled of a masked unit: exit %d %q", code, out)
	}
	// A unit file in the way is not overwritten.
	out, code = h.systemctl("mask", "fail.service")
	if code == 0 {
		t.Errorf("mask over a unit file succeeded:\n%s", out)
	}
	out, code = h.systemctl("unmask", "once.service")
	expectCode(t, "unmask", out, code, 0)
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("unmask left %s: %v", link, err)
	}
}

func TestSystemctlStatusShowsProcessLines(t *testing.T) {
	h := newProcHarness(t, moreUnits())
	out, code := h.systemctl("start", "pre.service")
	expectCode(t, "start pre.service", out, code, 0)
	out, code = h.systemctl("status", "pre.service")
	expectCode(t, "status pre.service", out, code, 0)
	for _, re := range []string{
		`Process: \d+ ExecStartPre=/bin/true first \(code=exited, status=0/SUCCESS\)`,
		`Process: \d+ ExecStartPre=/bin/false \(code=exited, status=1/FAILURE\)`,
		`Main PID: \d+ \(sleep\)`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	out, code = h.systemctl("show", "-p", "InvocationID", "--value", "pre.service")
	expectCode(t, "show InvocationID", out, code, 0)
	if !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(out) {
		t.Errorf("InvocationID = %q", out)
	}
	out, _ = h.systemctl("show", "-p", "ExecMainStartTimestamp", "--value", "pre.service")
	if strings.TrimSpace(out) == "" || strings.TrimSpace(out) == "n/a" {
		t.Errorf("ExecMainStartTimestamp = %q", out)
	}
}

func TestSystemctlEnvironmentDefaultReenableSetProperty(t *testing.T) {
	h := newProcHarness(t, moreUnits())
	out, code := h.systemctl("set-environment", "VIGIL_A=1", "VIGIL_B=two words")
	expectCode(t, "set-environment", out, code, 0)
	out, code = h.systemctl("unset-environment", "VIGIL_A")
	expectCode(t, "unset-environment", out, code, 0)
	out, code = h.systemctl("show-environment")
	expectCode(t, "show-environment", out, code, 0)
	if strings.Contains(out, "VIGIL_A") || !strings.Contains(out, "VIGIL_B") {
		t.Errorf("show-environment:\n%s", out)
	}
	out, code = h.systemctl("set-environment", "1BAD=x")
	if code == 0 {
		t.Errorf("set-environment of an invalid name succeeded:\n%s", out)
	}

	out, code = h.systemctl("set-default", "test.target")
	expectCode(t, "set-default", out, code, 0)
	if !strings.Contains(out, "default.target") {
		t.Errorf("set-default said:\n%s", out)
	}
	out, code = h.systemctl("get-default")
	expectCode(t, "get-default", out, code, 0)
	if strings.TrimSpace(out) != "test.target" {
		t.Errorf("get-default = %q", out)
	}

	out, code = h.systemctl("reenable", "inst.service")
	expectCode(t, "reenable", out, code, 0)
	out, _ = h.systemctl("is-enabled", "inst.service")
	if strings.TrimSpace(out) != "enabled" {
		t.Errorf("is-enabled after reenable: %q", out)
	}
	out, code = h.systemctl("set-property", "sleeper.service", "MemoryMax=64M", "CPUWeight=50")
	expectCode(t, "set-property", out, code, 0)
	dropIn, err := os.ReadFile(filepath.Join(h.units, "sleeper.service.d", "50-set-property.toml"))
	if err != nil || !strings.Contains(string(dropIn), "memory-max = \"67108864\"") || !strings.Contains(string(dropIn), "cpu-weight = 50") {
		t.Errorf("set-property drop-in (%v):\n%s", err, dropIn)
	}
	out, code = h.systemctl("set-property", "sleeper.service", "Frobnicate=1")
	if code == 0 {
		t.Errorf("set-property of an unknown property succeeded:\n%s", out)
	}
}

// TestSystemdRunWait runs the real systemd-run over the system bus, which
// is where --wait talks (it needs its reference tracked by bus name).
func TestSystemdRunWait(t *testing.T) {
	for _, tool := range []string{"dbus-daemon", "systemd-run", "systemctl"} {
		needTool(t, tool)
	}
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	busDir := t.TempDir()
	sock := filepath.Join(busDir, "system_bus_socket")
	startBus(t, busDir, sock)
	h := newProcHarness(t, testUnits(), busEnv+"="+sock)
	waitForOwner(t, sock, 10*time.Second)
	runOnBus := func(args ...string) (string, int) {
		all := append([]string{"-m", "--propagation", "private", "sh", "-c", systemctlBusScript, "sh"}, args...)
		return run(t, 60*time.Second, []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + sock}, "unshare", all...)
	}
	out, code := runOnBus("systemd-run", "--wait", "--unit", "run-three", "-p", "MemoryMax=64M",
		"-p", "Environment=X=1", "/bin/sh", "-c", "exit 3")
	if code != 3 || !strings.Contains(out, "Finished with result: exit-code") || !strings.Contains(out, "status=3") {
		t.Fatalf("systemd-run --wait of exit 3: exit %d:\n%s", code, out)
	}
	// A failed transient unit stays (collect mode inactive) and shows its
	// file; reset-failed lets it go.
	out, code = h.systemctl("status", "run-three.service")
	if code != 3 || !strings.Contains(out, "transient") || !strings.Contains(out, "status=3") {
		t.Errorf("status of the failed transient unit: exit %d:\n%s", code, out)
	}
	out, code = h.systemctl("cat", "run-three.service")
	if code != 0 || !strings.Contains(out, `"exit 3"`) || !strings.Contains(out, "memory-max") {
		t.Errorf("cat of the transient unit: exit %d:\n%s", code, out)
	}
	out, code = h.systemctl("reset-failed", "run-three.service")
	expectCode(t, "reset-failed", out, code, 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code = h.systemctl("status", "run-three.service")
		if code == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the transient unit was not collected after reset-failed: exit %d:\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "run", "transient", "run-three.service")); !os.IsNotExist(err) {
		t.Errorf("the transient file is still there: %v", err)
	}

	out, code = runOnBus("systemd-run", "--wait", "--unit", "run-ok", "/bin/true")
	if code != 0 || !strings.Contains(out, "Finished with result: success") {
		t.Errorf("systemd-run --wait of /bin/true: exit %d:\n%s", code, out)
	}
	out, code = runOnBus("systemd-run", "--unit", "run-bogus", "-p", "CPUSchedulingPolicy=rr", "/bin/true")
	if code == 0 || !strings.Contains(out, "CPUSchedulingPolicy") {
		t.Errorf("systemd-run with an unsupported property: exit %d:\n%s", code, out)
	}
}

// TestSystemdRunPrivateSocket runs systemd-run without --wait, which root
// sends over /run/systemd/private: the unit runs and, unreferenced, is
// collected once done.
func TestSystemdRunPrivateSocket(t *testing.T) {
	needTool(t, "systemd-run")
	h := newProcHarness(t, testUnits())
	script := strings.Replace(systemctlScript, "exec systemctl --no-pager", "exec systemd-run", 1)
	out, code := run(t, 30*time.Second, nil, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", h.sock,
		"--unit", "run-p2p", "-p", "Type=oneshot", "-p", "RemainAfterExit=yes", "/bin/true")
	if code != 0 || !strings.Contains(out, "run-p2p.service") {
		t.Fatalf("systemd-run: exit %d:\n%s", code, out)
	}
	// RemainAfterExit keeps it active, so it stays; stopping it lets it go.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code = h.systemctl("is-active", "run-p2p.service")
		if strings.TrimSpace(out) == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run-p2p.service never became active: %d %s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, code = h.systemctl("stop", "run-p2p.service")
	expectCode(t, "stop run-p2p.service", out, code, 0)
	for {
		out, code = h.systemctl("status", "run-p2p.service")
		if code == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run-p2p.service was not collected: %d\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
