package dbus

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemctlSlices drives slice units with the real systemctl over the
// private socket: they are listed, show their group and figures, appear
// in list-dependencies, report each unit's real Slice, and stopping one
// stops what runs in it.
func TestSystemctlSlices(t *testing.T) {
	needTool(t, "systemctl")
	cg := testCgroupDir(t)
	files := testUnits()
	files["shop.slice"] = "[unit]\ndescription = \"Shop\"\n[resources]\ntasks-max = 30\n"
	files["web.service"] = "[unit]\ndescription = \"Web\"\n[service]\nexec-start = \"/bin/sleep 1000\"\n[resources]\nslice = \"shop-web.slice\"\n"
	h := newProcHarness(t, files, cgroupEnv+"="+cg)
	base := "/" + filepath.Base(cg)

	out, code := h.systemctl("list-units", "--all", "--type", "slice")
	expectCode(t, "list-units --type slice", out, code, 0)
	for _, re := range []string{`(?m)^\s*-\.slice\s+loaded\s+active\s+active`, `(?m)^\s*system\.slice\s+loaded`,
		`(?m)^\s*shop\.slice\s+loaded\s+inactive\s+dead\s+Shop`, `(?m)^\s*shop-web\.slice\s+loaded`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("list-units --type slice lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, ".service") {
		t.Errorf("list-units --type slice lists services:\n%s", out)
	}
	for _, unit := range []string{"web.service", "sleeper.service"} {
		out, code = h.systemctl("start", unit)
		expectCode(t, "start "+unit, out, code, 0)
	}
	out, code = h.systemctl("status", "shop.slice")
	expectCode(t, "status shop.slice", out, code, 0)
	for _, re := range []string{`shop\.slice - Shop`, `Loaded: loaded \(.*/shop\.slice; static\)`, `Active: active (\(active\) )?since`,
		regexp.QuoteMeta(base + "/shop.slice"), `sleep 1000`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status shop.slice lacks %s:\n%s", re, out)
		}
	}
	out, code = h.systemctl("status", "system.slice")
	expectCode(t, "status system.slice", out, code, 0)
	if !strings.Contains(out, "system.slice - System Slice") || !strings.Contains(out, "Active: active") {
		t.Errorf("status system.slice:\n%s", out)
	}
	out, code = h.systemctl("show", "-p", "Slice", "--value", "web.service")
	expectCode(t, "show -p Slice", out, code, 0)
	if strings.TrimSpace(out) != "shop-web.slice" {
		t.Errorf("web.service Slice=%q", out)
	}
	out, _ = h.systemctl("show", "-p", "Slice", "--value", "sleeper.service")
	if strings.TrimSpace(out) != "system.slice" {
		t.Errorf("sleeper.service Slice=%q", out)
	}
	out, code = h.systemctl("show", "-p", "Slice,ControlGroup,CPUUsageNSec,ActiveState", "shop-web.slice")
	expectCode(t, "show shop-web.slice", out, code, 0)
	for _, re := range []string{`(?m)^Slice=shop\.slice$`, `(?m)^ControlGroup=` + regexp.QuoteMeta(base+"/shop.slice/shop-web.slice") + `$`,
		`(?m)^CPUUsageNSec=\d+$`, `(?m)^ActiveState=active$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show shop-web.slice lacks %s:\n%s", re, out)
		}
	}
	out, code = h.systemctl("list-dependencies", "--plain", "web.service")
	expectCode(t, "list-dependencies", out, code, 0)
	if !strings.Contains(out, "shop-web.slice") {
		t.Errorf("list-dependencies web.service lacks its slice:\n%s", out)
	}
	out, code = h.systemctl("stop", "shop.slice")
	expectCode(t, "stop shop.slice", out, code, 0)
	out, _ = h.systemctl("is-active", "web.service", "shop-web.slice", "sleeper.service")
	if got := strings.Fields(out); len(got) != 3 || got[0] != "inactive" || got[1] != "inactive" || got[2] != "active" {
		t.Errorf("after stopping shop.slice, is-active web, shop-web.slice, sleeper: %q", got)
	}
}
