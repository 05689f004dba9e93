package units

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vigil/units/api"
)

// Slices named by units exist as units without files, with their parents,
// and the graph ties each unit to its slice and each slice to its parent.
func TestSliceUnitsImpliedAndOrdered(t *testing.T) {
	h := newHarness(t, map[string]string{
		"db.service":     "[service]\nexec-start = \"/bin/sleep 300\"\n[resources]\nslice = \"app-db.slice\"\n",
		"plain.service":  "[service]\nexec-start = \"/bin/sleep 300\"\n",
		"tty-x@.service": "[service]\nexec-start = \"/bin/sleep 300\"\n",
	})
	var names []string
	h.do(func() {
		for _, s := range h.m.List(api.ListArgs{All: true, Types: []string{"slice"}}) {
			names = append(names, s.Name)
		}
	})
	for _, want := range []string{"-.slice", "system.slice", "app.slice", "app-db.slice"} {
		if !slices.Contains(names, want) {
			t.Errorf("slice %s not loaded: %v", want, names)
		}
	}
	if a, _ := h.state("-.slice"); a != "active" {
		t.Errorf("-.slice is %s: the root slice is perpetual", a)
	}
	if a, _ := h.state("app.slice"); a != "inactive" {
		t.Errorf("app.slice is %s before anything runs in it", a)
	}
	h.do(func() {
		for unit, slice := range map[string]string{"db.service": "app-db.slice", "plain.service": "system.slice",
			"app-db.slice": "app.slice", "app.slice": "-.slice", "system.slice": "-.slice"} {
			u := h.m.Unit(unit)
			if !u.hasDep(Requires, slice) || !u.hasDep(After, slice) {
				t.Errorf("%s: Requires %v After %v, want %s in both", unit, u.Deps(Requires), u.Deps(After), slice)
			}
			if got := h.m.SliceOf(unit); got != slice {
				t.Errorf("SliceOf(%s) = %q, want %q", unit, got, slice)
			}
		}
		if len(h.m.Unit("-.slice").Deps(Requires)) != 0 {
			t.Errorf("-.slice requires %v", h.m.Unit("-.slice").Deps(Requires))
		}
	})
	// Instances of a template share a slice named after it, as in systemd.
	if res, why := h.start("tty-x@1.service"); res != api.ResultDone {
		t.Fatalf("start tty-x@1.service: %s (%s)", res, why)
	}
	if got := h.prop("tty-x@1.service", "Slice"); got != `system-tty\x2dx.slice` {
		t.Errorf("tty-x@1.service: Slice=%q, want system-tty\\x2dx.slice", got)
	}
	if a, _ := h.state(`system-tty\x2dx.slice`); a != "active" {
		t.Errorf("the template's slice is %s after its instance started", a)
	}
	if got := h.prop("db.service", "Slice"); got != "app-db.slice" {
		t.Errorf("initctl show db.service: Slice=%q, want app-db.slice", got)
	}
	if res, why := h.start("db.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	for _, s := range []string{"app.slice", "app-db.slice"} {
		if a, _ := h.state(s); a != "active" {
			t.Errorf("%s is %s after a unit in it started", s, a)
		}
	}
	if res, why := h.start("plain.service"); res != api.ResultDone {
		t.Fatalf("start plain: %s (%s)", res, why)
	}
	// Stopping a slice stops what is in it, and its sub-slices, only.
	if res, why := h.stop("app.slice"); res != api.ResultDone {
		t.Fatalf("stop app.slice: %s (%s)", res, why)
	}
	for _, name := range []string{"db.service", "app-db.slice", "app.slice"} {
		if a, _ := h.state(name); a != "inactive" {
			t.Errorf("%s is %s after its slice stopped", name, a)
		}
	}
	if a, _ := h.state("plain.service"); a != "active" {
		t.Errorf("plain.service is %s: stopping app.slice reached outside it", a)
	}
	if res, _ := h.stop("-.slice"); res == api.ResultDone {
		t.Errorf("the root slice stopped")
	}
}

// A slice runs its units in its group, applies its limits when it starts,
// takes new ones from set-property, and removes its group when stopped.
func TestSliceCgroupLimitsAndStop(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{
		"work.slice":   "[unit]\ndescription = \"Work\"\n[resources]\ntasks-max = 40\nmemory-max = \"64M\"\n",
		"job.service":  "[service]\nexec-start = \"/bin/sleep 300\"\n[resources]\nslice = \"work-batch.slice\"\n",
		"free.service": "[service]\nexec-start = \"/bin/sleep 300\"\n",
	})
	if res, why := h.start("job.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	main := h.status("job.service").MainPID
	if got, want := procCgroup(t, main), tree.Name("work.slice/work-batch.slice/job.service"); got != want {
		t.Errorf("main process in %s, want %s", got, want)
	}
	st := h.status("work.slice")
	if st.ControlGroup != tree.Name("work.slice") || st.Description != "Work" {
		t.Errorf("work.slice: control group %q, description %q", st.ControlGroup, st.Description)
	}
	if !slices.ContainsFunc(st.Processes, func(p api.Process) bool { return p.PID == main }) {
		t.Errorf("work.slice processes %+v lack the service's %d", st.Processes, main)
	}
	if got := h.prop("work.slice", "ControlGroup"); got != tree.Name("work.slice") {
		t.Errorf("show ControlGroup = %q", got)
	}
	checkLimit := func(file, want string, warnings []string) {
		t.Helper()
		ctrl, _, _ := strings.Cut(file, ".")
		if tree.Available(ctrl) {
			if v, _ := tree.Read("work.slice", file); strings.TrimSpace(v) != want {
				t.Errorf("%s = %q, want %s", file, v, want)
			}
		} else if warnings != nil && !strings.Contains(strings.Join(warnings, "\n"), file+"="+want) {
			t.Errorf("no warning about the missing %s controller: %v", ctrl, warnings)
		}
	}
	checkLimit("pids.max", "40", nil)
	if !tree.Available("pids") && !strings.Contains(h.logText(), "pids.max=40") {
		t.Errorf("the slice's unapplied limit is not in the log:\n%s", h.logText())
	}
	var res api.SetPropertyResult
	var err error
	h.do(func() {
		res, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "work.slice", Properties: []string{"tasks-max=25"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkLimit("pids.max", "25", res.Warnings)
	// An implied slice (no file) takes properties too.
	h.do(func() {
		res, err = h.m.SetProperty(api.SetPropertyArgs{Unit: "work-batch.slice", Properties: []string{"tasks-max=7"}})
	})
	if err != nil {
		t.Fatalf("set-property on an implied slice: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(h.units, "work-batch.slice.d", SetPropertyDropIn)); serr != nil {
		t.Error(serr)
	}
	var tasks uint64
	h.do(func() {
		if r := h.m.Unit("work-batch.slice").cfg.Resources; r != nil && r.TasksMax != nil {
			tasks = r.TasksMax.Count
		}
	})
	if tasks != 7 {
		t.Errorf("work-batch.slice tasks-max after set-property: %d", tasks)
	}
	if res, why := h.start("free.service"); res != api.ResultDone {
		t.Fatalf("start free: %s (%s)", res, why)
	}
	if res, why := h.stop("work.slice"); res != api.ResultDone {
		t.Fatalf("stop work.slice: %s (%s)", res, why)
	}
	if pidAlive(main) {
		t.Errorf("process %d survived the stop of its slice", main)
	}
	if _, err := os.Stat(tree.Path("work.slice")); !os.IsNotExist(err) {
		t.Errorf("work.slice's group left after stop: %v", err)
	}
	if a, _ := h.state("free.service"); a != "active" {
		t.Errorf("free.service is %s", a)
	}
	if st := h.status("system.slice"); st.ControlGroup != tree.Name("system.slice") {
		t.Errorf("system.slice control group %q", st.ControlGroup)
	}
}

// A socket's commands run in the socket's group, in its slice; the group
// goes when the socket is dead.
func TestSocketCommandsInTheirCgroup(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{
		"probe.socket": "[socket]\nlisten-stream = [\"@DIR@/probe.sock\"]\nremove-on-stop = true\n" +
			"exec-start-pre = \"/bin/sh -c 'cat /proc/self/cgroup > @DIR@/start-pre.cgroup'\"\n" +
			"[resources]\nslice = \"net.slice\"\n",
	})
	if res, why := h.start("probe.socket"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	if a, _ := h.state("net.slice"); a != "active" {
		t.Errorf("net.slice is %s after its socket started", a)
	}
	got := readFile(t, h.path("start-pre.cgroup"))
	if want := "0::" + tree.Name("net.slice/probe.socket") + "\n"; !strings.Contains(got, want) {
		t.Errorf("exec-start-pre ran in %q, want %q", got, want)
	}
	if res, why := h.stop("probe.socket"); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	if _, err := os.Stat(tree.Path("net.slice/probe.socket")); !os.IsNotExist(err) {
		t.Errorf("the socket's group is left after stop: %v", err)
	}
}
