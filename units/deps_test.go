package units

import (
	"os"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
)

const oneshotStay = "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n"

func TestConditionsSkipAndAssertsFail(t *testing.T) {
	h := newHarnessWith(t, map[string]string{
		"exists.service":   "[unit.condition]\npath-exists = \"@DIR@/flag\"\n" + oneshotStay,
		"notdir.service":   "[unit.condition]\npath-is-directory = \"!@DIR@/flag\"\n" + oneshotStay,
		"empty.service":    "[unit.condition]\nfile-not-empty = \"@DIR@/empty\"\n" + oneshotStay,
		"cmdline.service":  "[unit.condition]\nkernel-command-line = \"vigil.test=1\"\n" + oneshotStay,
		"nocmd.service":    "[unit.condition]\nkernel-command-line = \"quiet\"\n" + oneshotStay,
		"virt.service":     "[unit.condition]\nvirtualization = \"vm\"\n" + oneshotStay,
		"either.service":   "[unit.condition]\npath-exists = [\"|@DIR@/nope\", \"|@DIR@/flag\"]\n" + oneshotStay,
		"asserted.service": "[unit.assert]\npath-exists = \"@DIR@/nope\"\n" + oneshotStay,
	}, func(o *Options) {
		o.KernelCommandLine = "console=ttyS0 vigil.test=1"
		o.Virtualization = "kvm"
	})
	os.WriteFile(h.path("flag"), []byte("x"), 0o644)
	os.WriteFile(h.path("empty"), nil, 0o644)

	want := map[string]string{
		"exists.service": "active", "notdir.service": "active", "empty.service": "inactive",
		"cmdline.service": "active", "nocmd.service": "inactive", "virt.service": "active",
		"either.service": "active",
	}
	for name, state := range want {
		if res, why := h.start(name); res != api.ResultDone {
			t.Errorf("%s: job %s (%s); a false condition skips, it does not fail", name, res, why)
		}
		if a, _ := h.state(name); a != state {
			t.Errorf("%s: %s, want %s", name, a, state)
		}
	}
	if c := h.prop("empty.service", "ConditionResult"); c != "no" {
		t.Errorf("ConditionResult %q for a skipped unit", c)
	}
	if res, why := h.start("asserted.service"); res != api.ResultAssert || !strings.Contains(why, "path-exists") {
		t.Errorf("a false assert: %s (%s), want assert", res, why)
	}
}

func TestNeedsUpdateComparesUsrWithTheStamp(t *testing.T) {
	dir := t.TempDir()
	if !needsUpdate(dir) {
		t.Errorf("no .updated stamp: an update is needed")
	}
	stamp := dir + "/.updated"
	os.WriteFile(stamp, nil, 0o644)
	future := time.Now().Add(time.Hour)
	os.Chtimes(stamp, future, future)
	if needsUpdate(dir) {
		t.Errorf("stamp newer than /usr: no update needed")
	}
	past := time.Unix(1, 0)
	os.Chtimes(stamp, past, past)
	if !needsUpdate(dir) {
		t.Errorf("stamp older than /usr: an update is needed")
	}
}

func TestJobModes(t *testing.T) {
	h := newHarness(t, map[string]string{
		"slow.service":  "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/sleep 1\"\n",
		"base.service":  oneshotStay,
		"child.service": "[unit]\nrequires = [\"base.service\"]\nafter = [\"base.service\"]\n" + oneshotStay,
	})
	// fail: a stop while a start is queued is refused and leaves the start alone.
	var startErr error
	h.do(func() { _, startErr = h.m.Enqueue("slow.service", api.JobStart, api.ModeReplace) })
	if startErr != nil {
		t.Fatal(startErr)
	}
	res, why := h.job("slow.service", api.JobStop, api.ModeFail)
	if res != "error" || !strings.Contains(why, "destructive") {
		t.Errorf("mode fail against a queued start: %s (%s)", res, why)
	}
	h.waitState("slow.service", "active", 10*time.Second)
	// replace: the same stop replaces the start.
	if res, _ := h.job("slow.service", api.JobStop, api.ModeReplace); res != api.ResultDone {
		t.Errorf("mode replace: %s", res)
	}
	// ignore-dependencies: child starts without pulling base in.
	if res, why := h.job("child.service", api.JobStart, api.ModeIgnoreDependencies); res != api.ResultDone {
		t.Fatalf("ignore-dependencies: %s (%s)", res, why)
	}
	if a, _ := h.state("base.service"); a != "inactive" {
		t.Errorf("base.service %s: ignore-dependencies pulled it in", a)
	}
}

func TestJobTimeout(t *testing.T) {
	h := newHarness(t, map[string]string{
		"hang.service": "[unit]\njob-timeout = \"300ms\"\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/sleep 30\"\n",
	})
	if res, _ := h.start("hang.service"); res != api.ResultTimeout {
		t.Errorf("job result %s, want timeout", res)
	}
}

func TestBindsToPartOfOnFailure(t *testing.T) {
	h := newHarness(t, map[string]string{
		"dev.service":       "[service]\nexec-start = \"/bin/sleep 60\"\n",
		"bound.service":     "[unit]\nbinds-to = [\"dev.service\"]\nafter = [\"dev.service\"]\n[service]\nexec-start = \"/bin/sleep 60\"\n",
		"part.service":      "[unit]\npart-of = [\"dev.service\"]\n[service]\nexec-start = \"/bin/sleep 60\"\n",
		"crash.service":     "[unit]\non-failure = [\"rescue-me.service\"]\n[service]\nexec-start = \"/bin/false\"\n",
		"rescue-me.service": "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"touch @DIR@/rescued\"]\n",
	})
	h.start("bound.service")
	h.start("part.service")
	h.waitState("dev.service", "active", 30*time.Second)
	// Stopping dev stops part (part-of) and bound (binds-to).
	h.stop("dev.service")
	h.waitState("part.service", "inactive", 30*time.Second)
	h.waitState("bound.service", "inactive", 30*time.Second)
	// A bound unit also stops when its unit dies on its own.
	h.start("bound.service")
	h.waitState("dev.service", "active", 30*time.Second)
	h.do(func() { h.m.Kill(api.KillArgs{Unit: "dev.service", Signal: "SIGKILL"}) })
	h.waitState("bound.service", "inactive", 30*time.Second)
	// on-failure runs its unit when the unit fails.
	h.start("crash.service")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(h.path("rescued")); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("on-failure unit did not run\n%s", h.logText())
}
