package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/units/api"
)

func TestBadInputFailsOnlyItsUnit(t *testing.T) {
	h := newHarness(t, map[string]string{
		"nouser.service":    "[service]\ntype = \"oneshot\"\nuser = \"no-such-user-here\"\nexec-start = \"/bin/true\"\n",
		"noexec.service":    "[service]\ntype = \"oneshot\"\nexec-start = \"/nonexistent/daemon --flag\"\n",
		"needs.service":     "[unit]\nrequires = [\"ghost.service\"]\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
		"wantsg.service":    "[unit]\nwants = [\"ghost.service\"]\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
		"wrongtype.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = \"yes please\"\nexec-start = \"/bin/true\"\n",
		"fine.service":      "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
	})
	res, why := h.start("nouser.service")
	if res != api.ResultFailed || !strings.Contains(why, "no-such-user-here") {
		t.Errorf("unknown user: %s (%s)", res, why)
	}
	res, why = h.start("noexec.service")
	if res != api.ResultFailed || !strings.Contains(why, "/nonexistent/daemon") {
		t.Errorf("missing executable: %s (%s)", res, why)
	}
	if st := h.prop("noexec.service", "ExecMainStatus"); st != "status=203/EXEC" {
		t.Errorf("missing executable: ExecMainStatus %q, want status=203/EXEC", st)
	}
	// A requirement on a missing unit fails the start, naming the unit.
	res, why = h.start("needs.service")
	if res != api.ResultDependency || !strings.Contains(why, "ghost.service") {
		t.Errorf("requires missing unit: %s (%s)", res, why)
	}
	if a, _ := h.state("needs.service"); a == "active" {
		t.Errorf("needs.service started without its requirement\n%s", h.logText())
	}
	if res, why := h.start("wantsg.service"); res != api.ResultDone {
		t.Errorf("wants missing unit should still start: %s (%s)", res, why)
	}
	res, why = h.start("wrongtype.service")
	if res != "error" || !strings.Contains(why, "wrongtype.service:3:") || !strings.Contains(why, "remain-after-exit") {
		t.Errorf("wrong type: %s (%s)", res, why)
	}
	if res, _ := h.start("fine.service"); res != api.ResultDone {
		t.Errorf("fine.service: %s", res)
	}
}

func TestUnreadableUnitDirectoryIsReportedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.MkdirAll(good, 0o755)
	os.WriteFile(filepath.Join(good, "ok.service"), []byte("[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n"), 0o644)
	// A file where a directory should be: reading it as a directory fails
	// even for root.
	bad := filepath.Join(dir, "not-a-dir")
	os.WriteFile(bad, []byte("x"), 0o644)
	h := newHarnessWith(t, nil, func(o *Options) { o.UnitPaths = []string{bad, good} })
	if res, why := h.start("ok.service"); res != api.ResultDone {
		t.Fatalf("ok.service: %s (%s)", res, why)
	}
	if p := strings.Join(h.m.Problems(), "\n"); !strings.Contains(p, "not-a-dir") {
		t.Errorf("the unreadable directory is not reported:\n%s", p)
	}
}

func TestEarlierDirectoryWinsForDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "etc"), filepath.Join(dir, "lib")
	os.MkdirAll(first, 0o755)
	os.MkdirAll(second, 0o755)
	os.WriteFile(filepath.Join(first, "dup.service"), []byte("[unit]\ndescription = \"From etc\"\n[service]\nexec-start = \"/bin/true\"\n"), 0o644)
	os.WriteFile(filepath.Join(second, "dup.service"), []byte("[unit]\ndescription = \"From lib\"\n[service]\nexec-start = \"/bin/true\"\n"), 0o644)
	h := newHarnessWith(t, nil, func(o *Options) { o.UnitPaths = []string{first, second} })
	if d := h.prop("dup.service", "Description"); d != "From etc" {
		t.Errorf("description %q, want the earlier directory's", d)
	}
}
