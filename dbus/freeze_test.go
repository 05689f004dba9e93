package dbus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestSystemctlFreezeThaw freezes and thaws a running service with the
// real systemctl over the system bus, as it insists (FreezeUnit/ThawUnit), then with
// godbus on the Unit object (Freeze/Thaw), and checks the processes do
// stop and go on: a ticker rewrites a file ten times a second.
func TestSystemctlFreezeThaw(t *testing.T) {
	for _, tool := range []string{"dbus-daemon", "systemctl", "busctl"} {
		needTool(t, tool)
	}
	cg := testCgroupDir(t)
	if _, err := os.Stat(filepath.Join(cg, "cgroup.freeze")); err != nil {
		t.Skipf("no cgroup v2 freezer: %v", err)
	}
	tickDir := t.TempDir()
	tick := filepath.Join(tickDir, "tick")
	files := testUnits()
	files["ticker.service"] = "[service]\nexec-start = \"/bin/sh -c 'exec >/dev/null 2>&1; i=0; while :; do i=$((i+1)); echo $i > " +
		tick + ".new; mv " + tick + ".new " + tick + "; sleep 0.1; done'\"\n"
	// systemctl freeze and thaw want the system bus (BUS_FULL), not the
	// private socket.
	busDir := t.TempDir()
	os.Chmod(busDir, 0o755)
	os.Chmod(filepath.Dir(busDir), 0o755)
	bus := filepath.Join(busDir, "system_bus_socket")
	startBus(t, busDir, bus)
	h := newProcHarness(t, files, cgroupEnv+"="+cg, busEnv+"="+bus)
	waitForOwner(t, bus, 10*time.Second)
	readTick := func() string { data, _ := os.ReadFile(tick); return string(data) }
	waitTicking := func(what string) {
		t.Helper()
		before := readTick()
		deadline := time.Now().Add(20 * time.Second)
		for readTick() == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the ticker did not run", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	showFreezer := func() string {
		out, code := h.systemctl("show", "-p", "FreezerState", "--value", "ticker.service")
		expectCode(t, "show -p FreezerState", out, code, 0)
		return strings.TrimSpace(out)
	}

	out, code := h.systemctl("start", "ticker.service")
	expectCode(t, "start ticker.service", out, code, 0)
	waitTicking("after start")
	if s := showFreezer(); s != "running" {
		t.Errorf("FreezerState before freeze: %q", s)
	}
	out, _ = h.systemctl("show", "-p", "CanFreeze", "--value", "ticker.service")
	if strings.TrimSpace(out) != "yes" {
		t.Errorf("CanFreeze of a service: %q", out)
	}

	// FreezeUnit answers once the kernel says the group is frozen.
	out, code = systemctlOnBus(t, bus, nil, "freeze", "ticker.service")
	expectCode(t, "freeze", out, code, 0)
	if s := showFreezer(); s != "frozen" {
		t.Fatalf("FreezerState after freeze: %q", s)
	}
	frozenAt := readTick()
	time.Sleep(500 * time.Millisecond)
	if now := readTick(); now != frozenAt {
		t.Errorf("the frozen ticker went on: %q then %q", frozenAt, now)
	}
	out, _ = h.systemctl("is-active", "ticker.service")
	if strings.TrimSpace(out) != "active" {
		t.Errorf("a frozen unit is %q", out)
	}
	out, code = systemctlOnBus(t, bus, nil, "thaw", "ticker.service")
	expectCode(t, "thaw", out, code, 0)
	if s := showFreezer(); s != "running" {
		t.Errorf("FreezerState after thaw: %q", s)
	}
	waitTicking("after thaw")

	// The Unit object's own Freeze and Thaw, from godbus.
	conn := godbusClient(t, h.sock)
	unit := conn.Object(busName, UnitPath("ticker.service"))
	if err := unit.Call(ifaceUnit+".Freeze", 0).Err; err != nil {
		t.Fatalf("Unit.Freeze: %v", err)
	}
	v, err := unit.GetProperty(ifaceUnit + ".FreezerState")
	if err != nil || v.Value() != "frozen" {
		t.Errorf("FreezerState after Unit.Freeze: %v %v", v, err)
	}
	if err := unit.Call(ifaceUnit+".Thaw", 0).Err; err != nil {
		t.Fatalf("Unit.Thaw: %v", err)
	}
	waitTicking("after Unit.Thaw")

	// What cannot be frozen says so with systemd's errors.
	for _, c := range []struct{ unit, errName, text string }{
		{"test.target", ErrNameNotSupported, "does not support freezing"},
		{"once.service", ErrNameUnitInactive, "Unit is inactive"},
		{"nonesuch.service", ErrNameNoSuchUnit, "not loaded"},
	} {
		if c.unit != "nonesuch.service" {
			if out, code := h.systemctl("show", "-p", "Id", c.unit); code != 0 {
				t.Fatalf("load %s: %s", c.unit, out)
			}
		}
		err := conn.Object(busName, managerPath).Call(ifaceManager+".FreezeUnit", 0, c.unit).Err
		var de dbus.Error
		if !errors.As(err, &de) || de.Name != c.errName || !strings.Contains(fmt.Sprint(de.Body...), c.text) {
			t.Errorf("FreezeUnit(%s): %v, want %s %q", c.unit, err, c.errName, c.text)
		}
	}
	out, code = systemctlOnBus(t, bus, nil, "freeze", "test.target")
	if code == 0 || !strings.Contains(out, "does not support freezing") {
		t.Errorf("systemctl freeze test.target: exit %d:\n%s", code, out)
	}

	// A frozen unit still stops.
	if out, code := systemctlOnBus(t, bus, nil, "freeze", "ticker.service"); code != 0 {
		t.Fatalf("freeze again: %s", out)
	}
	out, code = h.systemctl("stop", "ticker.service")
	expectCode(t, "stop of a frozen unit", out, code, 0)
	out, _ = h.systemctl("is-active", "ticker.service")
	if strings.TrimSpace(out) != "inactive" {
		t.Errorf("after stopping the frozen unit: %q", out)
	}
}

// TestSystemctlListJobsAfterBefore runs `systemctl list-jobs --after` and
// `--before` on a job that another waits for (GetJobAfter/GetJobBefore).
// systemctl 252 words the rows itself: under a job, --after lists the
// jobs ordered after it (GetJobAfter) as "blocking job", --before the jobs
// ordered before it (GetJobBefore) as "waiting for job".
func TestSystemctlListJobsAfterBefore(t *testing.T) {
	files := testUnits()
	files["slow.service"] = "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/sleep 1000\"\n"
	files["later.service"] = "[unit]\nafter = [\"slow.service\"]\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n"
	h := newProcHarness(t, files)
	out, code := h.systemctl("start", "--no-block", "slow.service", "later.service")
	expectCode(t, "start --no-block", out, code, 0)
	var jobs string
	deadline := time.Now().Add(20 * time.Second)
	for {
		jobs, _ = h.systemctl("list-jobs")
		if regexp.MustCompile(`slow\.service\s+start\s+running`).MatchString(jobs) &&
			regexp.MustCompile(`later\.service\s+start\s+waiting`).MatchString(jobs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs never reached slow running, later waiting:\n%s", jobs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, code = h.systemctl("list-jobs", "--after")
	expectCode(t, "list-jobs --after", out, code, 0)
	if !regexp.MustCompile(`slow\.service\s+start\s+running\s*\n.*blocking job \d+ \(later\.service/start\)`).MatchString(out) {
		t.Errorf("list-jobs --after does not show later.service after slow.service:\n%s", out)
	}
	if strings.Contains(out, "(slow.service/start)") {
		t.Errorf("list-jobs --after shows slow.service as ordered after something:\n%s", out)
	}
	out, code = h.systemctl("list-jobs", "--before")
	expectCode(t, "list-jobs --before", out, code, 0)
	if !regexp.MustCompile(`later\.service\s+start\s+waiting\s*\n.*waiting for job \d+ \(slow\.service/start\)`).MatchString(out) {
		t.Errorf("list-jobs --before does not show slow.service before later.service:\n%s", out)
	}
	// A job that is gone is NoSuchJob.
	conn := godbusClient(t, h.sock)
	err := conn.Object(busName, managerPath).Call(ifaceManager+".GetJobAfter", 0, uint32(99999)).Err
	var de dbus.Error
	if !errors.As(err, &de) || de.Name != ErrNameNoSuchJob {
		t.Errorf("GetJobAfter(99999): %v", err)
	}
}
