package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/units/api"
)

// verbsHarness has an admin unit directory (h.units) and a vendor one
// after it.
func verbsHarness(t *testing.T) (*harness, string) {
	vendor := filepath.Join(t.TempDir(), "vendor")
	if err := os.MkdirAll(vendor, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(vendor, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("v.service", "[unit]\ndescription = \"vendor\"\n[service]\nexec-start = \"/bin/sleep 100\"\n[install]\nwanted-by = [\"multi-user.target\"]\n")
	write("w.service", "[service]\nexec-start = \"/bin/sleep 100\"\n[install]\nwanted-by = [\"multi-user.target\"]\n")
	h := newHarnessWith(t, map[string]string{
		"v.service":   "[unit]\ndescription = \"admin override\"\n[service]\nexec-start = \"/bin/sleep 200\"\n",
		"own.service": "[service]\nexec-start = \"/bin/sleep 100\"\n",
	}, func(o *Options) { o.UnitPaths = append(o.UnitPaths, vendor) })
	return h, vendor
}

func changeList(ch api.Changes) string {
	var out []string
	for _, c := range ch.Changes {
		out = append(out, c.Type+" "+c.Path+" "+c.Destination)
	}
	return strings.Join(out, "\n")
}

func TestLinkUnitFiles(t *testing.T) {
	h, vendor := verbsHarness(t)
	outside := filepath.Join(h.dir, "outside")
	os.MkdirAll(outside, 0o755)
	file := filepath.Join(outside, "x.service")
	if err := os.WriteFile(file, []byte("[service]\nexec-start = \"/bin/true\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(h.dir, "other", "x.service")
	os.MkdirAll(filepath.Dir(other), 0o755)
	os.WriteFile(other, []byte("[service]\nexec-start = \"/bin/false\"\n"), 0o644)
	link := func(force bool, paths ...string) (api.Changes, error) {
		var ch api.Changes
		var err error
		h.do(func() { ch, err = h.m.Link(paths, false, force) })
		return ch, err
	}
	ch, err := link(false, file)
	if err != nil || changeList(ch) != "symlink "+filepath.Join(h.units, "x.service")+" "+file {
		t.Fatalf("link: %v\n%s", err, changeList(ch))
	}
	if st := h.prop("x.service", "LoadState"); st != "loaded" {
		var got string
		h.do(func() { got = h.m.UnitFileState("x.service") })
		t.Errorf("linked unit LoadState %q (file state %q)", st, got)
	}
	var state string
	h.do(func() { state = h.m.UnitFileState("x.service") })
	if state != "linked" {
		t.Errorf("UnitFileState = %q, want linked", state)
	}
	if ch, err := link(false, file); err != nil || len(ch.Changes) != 0 {
		t.Errorf("second link: %v %v", ch, err)
	}
	if _, err := link(false, other); err == nil || !strings.Contains(err.Error(), "force") {
		t.Errorf("link over another file's link: %v", err)
	}
	ch, err = link(true, other)
	if err != nil || len(ch.Changes) != 2 || ch.Changes[0].Type != "unlink" || ch.Changes[1].Destination != other {
		t.Errorf("forced link: %v\n%s", err, changeList(ch))
	}
	if ch, err := link(false, filepath.Join(vendor, "w.service")); err != nil || len(ch.Changes) != 0 {
		t.Errorf("link of a file in a unit directory: %v %v", ch, err)
	}
	for _, bad := range []string{"x.service", filepath.Join(outside, "nope.service"), outside, filepath.Join(outside, "notaunit")} {
		if _, err := link(false, bad); err == nil {
			t.Errorf("link %s succeeded", bad)
		}
	}
}

func TestPresetWithoutPresetFilesEnables(t *testing.T) {
	h, _ := verbsHarness(t)
	preset := func(mode string, names ...string) (bool, api.Changes, error) {
		var carries bool
		var ch api.Changes
		var err error
		h.do(func() { carries, ch, err = h.m.Preset(names, mode) })
		return carries, ch, err
	}
	state := func(name string) string {
		var st string
		h.do(func() { st = h.m.UnitFileState(name) })
		return st
	}
	if _, _, err := preset("sideways", "w.service"); err == nil {
		t.Errorf("an unknown preset mode was accepted")
	}
	carries, ch, err := preset("disable-only", "w.service")
	if err != nil || !carries || len(ch.Changes) != 0 || state("w.service") != "disabled" {
		t.Errorf("disable-only: carries %v changes %v err %v state %s", carries, ch, err, state("w.service"))
	}
	carries, ch, err = preset("full", "w.service")
	if err != nil || !carries || len(ch.Changes) != 1 || state("w.service") != "enabled" {
		t.Errorf("full: carries %v changes %v err %v state %s", carries, ch, err, state("w.service"))
	}
	if carries, _, err := preset("", "own.service"); err != nil || carries {
		t.Errorf("preset of a unit without [install]: carries %v err %v", carries, err)
	}
	if _, _, err := preset("", "missing.service"); err == nil {
		t.Errorf("preset of a missing unit succeeded")
	}
	var all api.Changes
	h.do(func() { all, err = h.m.PresetAll("enable-only") })
	if err != nil || state("v.service") != "static" && state("v.service") != "enabled" {
		t.Errorf("preset-all: %v, v.service %s\n%s", err, state("v.service"), changeList(all))
	}
}

func TestRevertRemovesAdministratorChanges(t *testing.T) {
	h, vendor := verbsHarness(t)
	h.write(map[string]string{
		"v.service.d/10-extra.toml":   "[unit]\ndescription = \"drop-in\"\n",
		"own.service.d/10-extra.toml": "[unit]\ndescription = \"drop-in\"\n",
	})
	if err := os.Symlink("/dev/null", filepath.Join(h.units, "w.service")); err != nil {
		t.Fatal(err)
	}
	h.do(func() { h.m.Reload() })
	if d := h.prop("v.service", "Description"); d != "drop-in" {
		t.Fatalf("before revert: Description %q", d)
	}
	var ch api.Changes
	var err error
	h.do(func() { ch, err = h.m.Revert([]string{"v.service", "w.service", "own.service"}) })
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"v.service.d/10-extra.toml", "v.service.d", "v.service", "w.service", "own.service.d"} {
		p := filepath.Join(h.units, gone)
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived revert: %v", p, err)
		}
		if !strings.Contains(changeList(ch), "unlink "+p+" ") {
			t.Errorf("revert did not report %s:\n%s", p, changeList(ch))
		}
	}
	if _, err := os.Stat(filepath.Join(h.units, "own.service")); err != nil {
		t.Errorf("revert removed a unit file that has no vendor version: %v", err)
	}
	if _, err := os.Stat(filepath.Join(vendor, "v.service")); err != nil {
		t.Errorf("revert touched the vendor file: %v", err)
	}
	if d := h.prop("v.service", "Description"); d != "vendor" {
		t.Errorf("after revert, v.service's Description is %q, want the vendor's", d)
	}
	h.do(func() { _, err = h.m.Revert([]string{"../x.service"}) })
	if err == nil {
		t.Errorf("revert of a path succeeded")
	}
}

func TestAddDependency(t *testing.T) {
	h, vendor := verbsHarness(t)
	add := func(dep string, force bool, names ...string) (api.Changes, error) {
		var ch api.Changes
		var err error
		h.do(func() { ch, err = h.m.AddDependency(names, "multi-user.target", dep, false, force) })
		return ch, err
	}
	ch, err := add("Wants", false, "w.service")
	link := filepath.Join(h.units, "multi-user.target.wants", "w.service")
	if err != nil || changeList(ch) != "symlink "+link+" "+filepath.Join(vendor, "w.service") {
		t.Fatalf("add-wants: %v\n%s", err, changeList(ch))
	}
	if deps := h.prop("multi-user.target", "Wants"); !strings.Contains(deps, "w.service") {
		t.Errorf("multi-user.target Wants = %q", deps)
	}
	if ch, err := add("Wants", false, "w.service"); err != nil || len(ch.Changes) != 0 {
		t.Errorf("second add-wants: %v %v", ch, err)
	}
	if ch, err := add("Requires", false, "own.service"); err != nil || len(ch.Changes) != 1 ||
		ch.Changes[0].Path != filepath.Join(h.units, "multi-user.target.requires", "own.service") {
		t.Errorf("add-requires: %v %v", ch, err)
	}
	os.Remove(link)
	os.Symlink("/elsewhere/w.service", link)
	if _, err := add("Wants", false, "w.service"); err == nil || !strings.Contains(err.Error(), "force") {
		t.Errorf("add-wants over another link: %v", err)
	}
	if ch, err := add("Wants", true, "w.service"); err != nil || len(ch.Changes) != 2 {
		t.Errorf("forced add-wants: %v %v", ch, err)
	}
	if _, err := add("Conflicts", false, "w.service"); err == nil {
		t.Errorf("an unknown dependency type was accepted")
	}
	if _, err := add("Wants", false, "missing.service"); err == nil {
		t.Errorf("add-wants of a missing unit succeeded")
	}
}
