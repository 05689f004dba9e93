package dbus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemctlLinkPresetRevert runs systemd 252's systemctl link,
// preset, preset-all, add-wants and revert against Vigil over the private
// socket.
func TestSystemctlLinkPresetRevert(t *testing.T) {
	h := newProcHarness(t, moreUnits())
	outside := filepath.Join(h.dir, "elsewhere")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(outside, "linked.service")
	if err := os.WriteFile(linked, []byte("[unit]\ndescription = \"Linked from outside\"\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := h.systemctl("link", linked)
	expectCode(t, "link", out, code, 0)
	link := filepath.Join(h.units, "linked.service")
	if !strings.Contains(out, "Created symlink "+link) || !strings.Contains(out, linked) {
		t.Errorf("link said:\n%s", out)
	}
	if target, err := os.Readlink(link); err != nil || target != linked {
		t.Errorf("link %s -> %q (%v)", link, target, err)
	}
	out, _ = h.systemctl("is-enabled", "linked.service")
	if strings.TrimSpace(out) != "linked" {
		t.Errorf("is-enabled of a linked unit: %q", out)
	}
	out, code = h.systemctl("start", "linked.service")
	expectCode(t, "start linked.service", out, code, 0)
	out, _ = h.systemctl("is-active", "linked.service")
	if strings.TrimSpace(out) != "active" {
		t.Errorf("linked.service after start: %q", out)
	}
	// Linking again is no change; a relative path or a missing file fails.
	out, code = h.systemctl("link", linked)
	expectCode(t, "link again", out, code, 0)
	if strings.Contains(out, "Created symlink") {
		t.Errorf("a second link made a link again:\n%s", out)
	}
	if out, code = h.systemctl("link", filepath.Join(outside, "missing.service")); code == 0 {
		t.Errorf("link of a missing file succeeded:\n%s", out)
	}

	// Without preset files, preset enables (systemd.preset(5)).
	out, code = h.systemctl("preset", "inst.service")
	expectCode(t, "preset", out, code, 0)
	if !strings.Contains(out, "Created symlink") || !strings.Contains(out, "test.target.wants/inst.service") {
		t.Errorf("preset said:\n%s", out)
	}
	out, _ = h.systemctl("is-enabled", "inst.service")
	if strings.TrimSpace(out) != "enabled" {
		t.Errorf("is-enabled after preset: %q", out)
	}
	out, code = h.systemctl("disable", "inst.service")
	expectCode(t, "disable", out, code, 0)
	out, code = h.systemctl("preset", "--preset-mode=disable-only", "inst.service")
	expectCode(t, "preset --preset-mode=disable-only", out, code, 0)
	if out, _ = h.systemctl("is-enabled", "inst.service"); strings.TrimSpace(out) != "disabled" {
		t.Errorf("disable-only preset enabled the unit: %q", out)
	}
	out, code = h.systemctl("preset-all")
	expectCode(t, "preset-all", out, code, 0)
	if out, _ = h.systemctl("is-enabled", "inst.service"); strings.TrimSpace(out) != "enabled" {
		t.Errorf("is-enabled after preset-all: %q", out)
	}

	// add-wants links a unit into a target's .wants.
	out, code = h.systemctl("add-wants", "test.target", "once.service")
	expectCode(t, "add-wants", out, code, 0)
	wants := filepath.Join(h.units, "test.target.wants", "once.service")
	if target, err := os.Readlink(wants); err != nil || target != filepath.Join(h.units, "once.service") || !strings.Contains(out, wants) {
		t.Errorf("add-wants made %s -> %q (%v); said:\n%s", wants, target, err, out)
	}
	out, _ = h.systemctl("show", "-p", "Wants", "--value", "test.target")
	if !strings.Contains(out, "once.service") {
		t.Errorf("test.target does not want once.service after add-wants: %q", out)
	}

	// revert removes drop-ins (set-property's) and masks.
	out, code = h.systemctl("set-property", "sleeper.service", "CPUWeight=50")
	expectCode(t, "set-property", out, code, 0)
	out, code = h.systemctl("mask", "ghost.service")
	expectCode(t, "mask", out, code, 0)
	out, code = h.systemctl("revert", "sleeper.service", "ghost.service")
	expectCode(t, "revert", out, code, 0)
	dropIns := filepath.Join(h.units, "sleeper.service.d")
	if !strings.Contains(out, "Removed") || !strings.Contains(out, dropIns) {
		t.Errorf("revert said:\n%s", out)
	}
	if _, err := os.Stat(dropIns); !os.IsNotExist(err) {
		t.Errorf("revert left %s: %v", dropIns, err)
	}
	if _, err := os.Lstat(filepath.Join(h.units, "ghost.service")); !os.IsNotExist(err) {
		t.Errorf("the mask of ghost.service survived revert: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.units, "sleeper.service")); err != nil {
		t.Errorf("revert removed a unit file that has no vendor version: %v", err)
	}
}
