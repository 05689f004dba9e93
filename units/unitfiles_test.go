package units

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/units/api"
)

func TestMaskRefusesStartAndCacheFollows(t *testing.T) {
	h := newHarness(t, map[string]string{
		"m.service": "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n[install]\nwanted-by = [\"multi-user.target\"]\n",
	})
	state := func() string {
		var st string
		h.do(func() { st = h.m.UnitFileState("m.service") })
		return st
	}
	if st := state(); st != "disabled" {
		t.Fatalf("state %s", st)
	}
	// A change made behind the manager's back shows after a reload, not
	// before: the answer is cached.
	os.MkdirAll(filepath.Join(h.units, "multi-user.target.wants"), 0o755)
	os.Symlink(filepath.Join(h.units, "m.service"), filepath.Join(h.units, "multi-user.target.wants", "m.service"))
	if st := state(); st != "disabled" {
		t.Errorf("state after a hand-made link, before reload: %s", st)
	}
	h.do(func() { h.m.Reload() })
	if st := state(); st != "enabled" {
		t.Errorf("state after reload: %s", st)
	}
	os.Remove(filepath.Join(h.units, "multi-user.target.wants", "m.service"))
	os.Rename(filepath.Join(h.units, "m.service"), filepath.Join(h.dir, "m.service"))
	os.Symlink(filepath.Join(h.dir, "m.service"), filepath.Join(h.units, "m.service"))
	h.do(func() { h.m.Reload() })

	var ch api.Changes
	var err error
	h.do(func() { ch, err = h.m.Mask([]string{"m.service"}, false) })
	if err != nil || len(ch.Changes) != 2 {
		t.Fatalf("mask: %v %+v", err, ch)
	}
	if st := state(); st != "masked" {
		t.Errorf("state after mask: %s", st)
	}
	if res, why := h.start("m.service"); res != "error" || !strings.Contains(why, "masked") {
		t.Errorf("start of a masked unit: %s %s", res, why)
	}
	h.do(func() { _, err = h.m.Mask([]string{"../x.service"}, false) })
	if err == nil {
		t.Errorf("mask of a path was accepted")
	}
	h.do(func() { ch, err = h.m.Unmask([]string{"m.service"}, false) })
	if err != nil || len(ch.Changes) != 1 {
		t.Fatalf("unmask: %v %+v", err, ch)
	}
	if st := state(); st == "masked" {
		t.Errorf("still masked after unmask")
	}
}

func TestManagerEnvironment(t *testing.T) {
	h := newHarnessWith(t, map[string]string{
		"env.service": "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"echo \\\"$$FOO $$BAR\\\" > @DIR@/env.out\"]\n",
	}, func(o *Options) { o.Environment = []string{"BAR=old"} })
	var err error
	h.do(func() { err = h.m.SetEnvironment([]string{"BAR"}, []string{"FOO=from-manager"}) })
	if err != nil {
		t.Fatal(err)
	}
	if res, why := h.start("env.service"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	if got := strings.TrimSpace(readFile(t, h.path("env.out"))); got != "from-manager" {
		t.Errorf("the unit saw %q", got)
	}
	for _, bad := range [][]string{{"1X=a"}, {"NOEQUALS"}, {"A B=c"}} {
		h.do(func() { err = h.m.SetEnvironment(nil, bad) })
		if err == nil {
			t.Errorf("SetEnvironment(%q) accepted", bad)
		}
	}
	var env []string
	h.do(func() { env = h.m.Environment() })
	if len(env) != 1 || env[0] != "FOO=from-manager" {
		t.Errorf("environment %q", env)
	}
}

func TestSetDefaultTargetAndLinks(t *testing.T) {
	h := newHarness(t, map[string]string{
		"gfx.target":   "[unit]\ndescription = \"Graphical\"\n",
		"w.service":    "[service]\nexec-start = \"/bin/sleep 100\"\n[install]\nwanted-by = [\"gfx.target\"]\n",
		"plain.target": "",
	})
	var err error
	h.do(func() { _, err = h.m.SetDefaultTarget("gfx.target") })
	if err != nil {
		t.Fatal(err)
	}
	var name string
	h.do(func() { name = h.m.Unit("default.target").Name })
	if name != "gfx.target" {
		t.Errorf("default.target is %s", name)
	}
	h.do(func() { _, err = h.m.SetDefaultTarget("nope.target") })
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Errorf("set-default of a missing target: %v", err)
	}
	h.do(func() { _, err = h.m.EnableDisable(true, []string{"w.service"}) })
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	h.do(func() { links, err = h.m.UnitFileLinks("w.service", false) })
	if err != nil || len(links) != 1 || !strings.HasSuffix(links[0], "gfx.target.wants/w.service") {
		t.Errorf("links %v %v", links, err)
	}
}

func TestExecRunsRecordEveryList(t *testing.T) {
	h := newHarness(t, map[string]string{
		"r.service": "[service]\nexec-start-pre = [\"/bin/true\", \"-/bin/false\"]\nexec-start = \"/bin/sleep 100\"\nexec-stop-post = \"/bin/true\"\n",
	})
	if res, why := h.start("r.service"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	var first, second ServiceRuntime
	h.do(func() { first, _ = h.m.ServiceRuntime("r.service") })
	pre := first.Commands["ExecStartPre"]
	if len(pre) != 2 || pre[0].Code != 1 || pre[0].Status != 0 || pre[1].Status != 1 || pre[1].PID == 0 || pre[1].Exit.IsZero() {
		t.Errorf("ExecStartPre runs %+v", pre)
	}
	if m := first.Commands["ExecStart"]; len(m) != 1 || m[0].PID == 0 || !m[0].Exit.IsZero() || first.ExecMainPID != m[0].PID {
		t.Errorf("ExecStart run %+v, main PID %d", m, first.ExecMainPID)
	}
	h.stop("r.service")
	h.start("r.service")
	h.do(func() { second, _ = h.m.ServiceRuntime("r.service") })
	if string(first.InvocationID) == string(second.InvocationID) || len(second.InvocationID) != 16 {
		t.Errorf("invocation IDs %x then %x", first.InvocationID, second.InvocationID)
	}
	if p := second.Commands["ExecStopPost"]; len(p) != 1 || !p[0].Start.IsZero() {
		t.Errorf("a new activation still shows the last stop-post run: %+v", p)
	}
}
