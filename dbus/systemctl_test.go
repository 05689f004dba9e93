package dbus

import (
	"regexp"
	"strings"
	"testing"
)

// testUnits are Vigil unit files (TOML) for the client tests.
func testUnits() map[string]string {
	return map[string]string{
		"sleeper.service": "[unit]\ndescription = \"Sleeping test service\"\n[service]\nexec-start = \"/bin/sleep 1000\"\n",
		"once.service":    "[unit]\ndescription = \"One-shot test\"\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n",
		"fail.service":    "[unit]\ndescription = \"Failing test\"\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/false\"\n",
		"test.target":     "[unit]\ndescription = \"Test target\"\nwants = [\"sleeper.service\"]\n",
	}
}

func expectCode(t *testing.T, what string, out string, code, want int) {
	t.Helper()
	if code != want {
		t.Fatalf("%s exited %d, want %d; output:\n%s", what, code, want, out)
	}
}

func TestSystemctlListUnits(t *testing.T) {
	h := newProcHarness(t, testUnits())
	out, code := h.systemctl("list-units", "--all")
	expectCode(t, "list-units --all", out, code, 0)
	for _, want := range []string{"sleeper.service", "once.service", "test.target", "Sleeping test service", "loaded units listed"} {
		if !strings.Contains(out, want) {
			t.Errorf("list-units --all lacks %q:\n%s", want, out)
		}
	}
	// The default listing hides inactive units; a pattern and a type filter
	// narrow it (ListUnitsByPatterns).
	out, code = h.systemctl("list-units", "--all", "--type=service", "s*")
	expectCode(t, "list-units --all --type=service s*", out, code, 0)
	if !strings.Contains(out, "sleeper.service") || strings.Contains(out, "once.service") || strings.Contains(out, ".target") {
		t.Errorf("pattern and type filter not applied:\n%s", out)
	}
	h.systemctl("start", "fail.service")
	out, code = h.systemctl("list-units", "--state=failed")
	expectCode(t, "list-units --state=failed", out, code, 0)
	if !regexp.MustCompile(`fail\.service\s+loaded\s+failed\s+failed\s+Failing test`).MatchString(out) {
		t.Errorf("list-units --state=failed does not show fail.service as failed:\n%s", out)
	}
}

func TestSystemctlStartStopStatus(t *testing.T) {
	h := newProcHarness(t, testUnits())
	out, code := h.systemctl("start", "sleeper.service")
	expectCode(t, "start sleeper.service", out, code, 0)
	out, code = h.systemctl("is-active", "sleeper.service")
	expectCode(t, "is-active", out, code, 0)
	if strings.TrimSpace(out) != "active" {
		t.Errorf("is-active printed %q", out)
	}
	out, code = h.systemctl("status", "sleeper.service")
	expectCode(t, "status sleeper.service", out, code, 0)
	for _, re := range []string{`sleeper\.service - Sleeping test service`, `Loaded: loaded \(.*/sleeper\.service; static\)`,
		`Active: active \(running\) since`, `Main PID: \d+ \(sleep\)`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	out, code = h.systemctl("show", "-p", "ActiveState,SubState,MainPID,Id", "sleeper.service")
	expectCode(t, "show -p", out, code, 0)
	for _, re := range []string{`(?m)^ActiveState=active$`, `(?m)^SubState=running$`, `(?m)^MainPID=[1-9]\d*$`, `(?m)^Id=sleeper\.service$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show lacks %s:\n%s", re, out)
		}
	}
	out, code = h.systemctl("stop", "sleeper.service")
	expectCode(t, "stop", out, code, 0)
	out, code = h.systemctl("show", "-p", "ActiveState", "--value", "sleeper.service")
	expectCode(t, "show --value", out, code, 0)
	if strings.TrimSpace(out) != "inactive" {
		t.Errorf("after stop ActiveState=%q", out)
	}
	out, code = h.systemctl("is-active", "sleeper.service")
	expectCode(t, "is-active after stop", out, code, 3)
}

func TestSystemctlOneshotAndFailure(t *testing.T) {
	h := newProcHarness(t, testUnits())
	// A oneshot's start returns only after JobRemoved arrived.
	out, code := h.systemctl("start", "once.service")
	expectCode(t, "start once.service", out, code, 0)
	out, code = h.systemctl("start", "fail.service")
	expectCode(t, "start fail.service", out, code, 1)
	if !strings.Contains(out, "Job for fail.service failed because the control process exited with error code.") {
		t.Errorf("failed start does not say why:\n%s", out)
	}
	out, code = h.systemctl("status", "fail.service")
	expectCode(t, "status fail.service", out, code, 3)
	if !strings.Contains(out, "Active: failed (Result: exit-code)") {
		t.Errorf("status of a failed unit:\n%s", out)
	}
	out, code = h.systemctl("is-failed", "fail.service")
	expectCode(t, "is-failed", out, code, 0)
	out, code = h.systemctl("reset-failed", "fail.service")
	expectCode(t, "reset-failed", out, code, 0)
	out, code = h.systemctl("is-failed", "fail.service")
	expectCode(t, "is-failed after reset-failed", out, code, 1)
	out, code = h.systemctl("--no-block", "start", "once.service")
	expectCode(t, "start --no-block", out, code, 0)
}

func TestSystemctlUnknownUnits(t *testing.T) {
	h := newProcHarness(t, testUnits())
	out, code := h.systemctl("status", "nonexist.service")
	expectCode(t, "status nonexist.service", out, code, 4)
	if !strings.Contains(out, "Unit nonexist.service could not be found.") {
		t.Errorf("status of an unknown unit:\n%s", out)
	}
	out, code = h.systemctl("is-active", "nonexist.service")
	expectCode(t, "is-active nonexist.service", out, code, 3)
	if strings.TrimSpace(out) != "inactive" {
		t.Errorf("is-active of an unknown unit printed %q", out)
	}
	out, code = h.systemctl("show", "-p", "Id", "--value", "nonexist.service")
	expectCode(t, "show -p Id nonexist.service", out, code, 0)
	if strings.TrimSpace(out) != "nonexist.service" {
		t.Errorf("show Id of an unknown unit printed %q", out)
	}
	out, code = h.systemctl("start", "nonexist.service")
	expectCode(t, "start nonexist.service", out, code, 5)
	if !strings.Contains(out, "Unit nonexist.service not found.") {
		t.Errorf("start of an unknown unit:\n%s", out)
	}
	out, code = h.systemctl("reload", "once.service")
	expectCode(t, "reload of a unit without ExecReload", out, code, 3)
}

func TestSystemctlMiscVerbs(t *testing.T) {
	h := newProcHarness(t, testUnits())
	out, code := h.systemctl("list-jobs")
	expectCode(t, "list-jobs", out, code, 0)
	if !strings.Contains(out, "No jobs running.") {
		t.Errorf("list-jobs:\n%s", out)
	}
	out, code = h.systemctl("is-enabled", "once.service")
	expectCode(t, "is-enabled", out, code, 0)
	out, code = h.systemctl("list-unit-files", "*.service")
	expectCode(t, "list-unit-files", out, code, 0)
	if !strings.Contains(out, "once.service") || strings.Contains(out, ".target") {
		t.Errorf("list-unit-files *.service:\n%s", out)
	}
	out, code = h.systemctl("daemon-reload")
	expectCode(t, "daemon-reload", out, code, 0)
	out, code = h.systemctl("cat", "once.service")
	expectCode(t, "cat", out, code, 0)
	if !strings.Contains(out, `exec-start = "/bin/true"`) {
		t.Errorf("cat:\n%s", out)
	}
	out, code = h.systemctl("list-dependencies", "test.target")
	expectCode(t, "list-dependencies", out, code, 0)
	if !strings.Contains(out, "sleeper.service") {
		t.Errorf("list-dependencies:\n%s", out)
	}
	out, code = h.systemctl("status")
	expectCode(t, "status (manager)", out, code, 0)
	if !regexp.MustCompile(`Units: \d+ loaded`).MatchString(out) || strings.Contains(out, "Failed to") {
		t.Errorf("status of the manager:\n%s", out)
	}
	h.systemctl("start", "sleeper.service")
	out, code = h.systemctl("kill", "-s", "TERM", "sleeper.service")
	expectCode(t, "kill", out, code, 0)
}
