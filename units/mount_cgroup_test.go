package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
	"vigil/units/cgroup"
)

// TestMountHelperRunsInTheMountsCgroup: a mount unit gets its cgroup
// (system.slice/NAME.mount) when it starts, its mount helper is born in
// it, it is shown as ControlGroup, and it goes when the unit stops.
func TestMountHelperRunsInTheMountsCgroup(t *testing.T) {
	tree := testCgroupTree(t)
	var where, name, cgFile string
	x := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "mnt", "net")
		name = mountName(t, where)
		cgFile = filepath.Join(dir, "helper-cgroup")
		return map[string]string{name: "[mount]\nwhat = \"server:/export\"\nwhere = \"" + where + "\"\ntype = \"vigiltest\"\n"}
	}, func(o *Options) { o.Cgroups = tree })
	helpers := filepath.Join(x.dir, "sbin")
	os.MkdirAll(helpers, 0o755)
	script := "#!/bin/sh\ncat /proc/self/cgroup > " + cgFile + ".tmp && mv " + cgFile + ".tmp " + cgFile + "\n"
	if err := os.WriteFile(filepath.Join(helpers, "mount.vigiltest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	x.do(func() { x.m.mounts.helperDirs = []string{helpers} })

	if res, why := x.start(name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, x.logText())
	}
	rel := "system.slice/" + name
	data, err := os.ReadFile(cgFile)
	if err != nil {
		t.Fatalf("the helper did not run: %v", err)
	}
	got, err := cgroup.CgroupOfProc(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if got != tree.Name(rel) {
		t.Errorf("the helper ran in %s, want %s", got, tree.Name(rel))
	}
	if cg := x.status(name).ControlGroup; cg != tree.Name(rel) {
		t.Errorf("ControlGroup of the mounted unit = %q, want %q", cg, tree.Name(rel))
	}
	if _, err := os.Stat(tree.Path(rel)); err != nil {
		t.Errorf("the mount's cgroup is not there while it is mounted: %v", err)
	}
	if res, why := x.stop(name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)\n%s", res, why, x.logText())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(tree.Path(rel)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount's cgroup %s outlived the unit's stop", tree.Path(rel))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cg := x.status(name).ControlGroup; cg != "" {
		t.Errorf("ControlGroup after the stop = %q", cg)
	}
	if strings.Contains(x.logText(), "running the command outside it") {
		t.Errorf("the helper ran outside the cgroup:\n%s", x.logText())
	}
}

// TestSwapHasItsCgroup: a swap unit has its group (system.slice/NAME.swap),
// shown as ControlGroup, from its start until it is off again, as systemd
// gives swaps one (its swapon runs there; Vigil's own swapon(2) runs in no
// process, so the group stays empty). A 16 MB swap file as in
// TestSwapUnitActivatesAndDeactivates.
func TestSwapHasItsCgroup(t *testing.T) {
	file, name := swapFile(t)
	h, tree := newCgroupHarness(t, map[string]string{name: "[swap]\n"})
	defer exec.Command("swapoff", file).Run()
	if res, why := h.start(name); res != api.ResultDone {
		if strings.Contains(why, "operation not permitted") || strings.Contains(why, "invalid argument") {
			t.Skipf("swapon refused here: %s", why)
		}
		t.Fatalf("start: %s (%s)", res, why)
	}
	rel := "system.slice/" + name
	if cg := h.status(name).ControlGroup; cg != tree.Name(rel) {
		t.Errorf("ControlGroup of the active swap = %q, want %q", cg, tree.Name(rel))
	}
	if _, err := os.Stat(tree.Path(rel)); err != nil {
		t.Errorf("the swap's cgroup is not there while it is on: %v", err)
	}
	if res, why := h.stop(name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	if _, err := os.Stat(tree.Path(rel)); !os.IsNotExist(err) {
		t.Errorf("the swap's cgroup outlived its stop: %v", err)
	}
	if cg := h.status(name).ControlGroup; cg != "" {
		t.Errorf("ControlGroup after the stop = %q", cg)
	}
}
