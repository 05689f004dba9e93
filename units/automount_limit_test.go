package units

import (
	"strings"
	"testing"
	"time"

	"vigil/units/api"
)

// TestAutomountRemountsIgnoreStartLimit: a mount unit with a start limit
// of 2 starts is unmounted and mounted again through its automount more
// often than that; every access still succeeds, while manual starts keep
// counting against the limit.
func TestAutomountRemountsIgnoreStartLimit(t *testing.T) {
	s := newAutomountHarness(t, "", "")
	// The harness's mount unit, with a tight start limit.
	s.write(map[string]string{s.mount: "[unit]\nstart-limit-burst = 2\nstart-limit-interval = \"10min\"\n[mount]\nwhat = \"" + s.src +
		"\"\nwhere = \"" + s.where + "\"\noptions = \"bind\"\ntimeout = \"5s\"\n"})
	s.do(func() { s.m.Reload() })
	if res, why := s.start(s.autoName); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	const remounts = 5
	for i := 0; i < remounts; i++ {
		out, err := accessMount(t, "ls", s.where)
		if err != nil || strings.TrimSpace(out) != "hello" {
			t.Fatalf("access %d: ls = %q, %v\n%s", i+1, out, err, s.logText())
		}
		s.waitState(s.mount, "active", 30*time.Second)
		s.waitMountSeen(true)
		if res, why := s.stop(s.mount); res != api.ResultDone {
			t.Fatalf("stop %d: %s (%s)", i+1, res, why)
		}
		s.waitSub(s.autoName, automountWaiting)
		s.waitMountSeen(false)
	}
	if strings.Contains(s.logText(), "repeated too quickly") {
		t.Fatalf("an automount remount hit the start limit:\n%s", s.logText())
	}
	// Manual starts still count: the third within the interval is
	// refused. (Without the trigger: a plain mount point.)
	if res, why := s.stop(s.autoName); res != api.ResultDone {
		t.Fatalf("stop %s: %s (%s)", s.autoName, res, why)
	}
	for i := 1; i <= 3; i++ {
		t.Logf("manual start %d", i)
		res, why := s.start(s.mount)
		if i < 3 && res != api.ResultDone {
			t.Fatalf("manual start %d: %s (%s)", i, res, why)
		}
		if i == 3 {
			if res != api.ResultFailed || !strings.Contains(s.logText(), "repeated too quickly") {
				t.Fatalf("manual start 3: %s (%s), want the start limit\n%s", res, why, s.logText())
			}
			break
		}
		s.waitMountSeen(true)
		if res, why := s.stop(s.mount); res != api.ResultDone {
			t.Fatalf("stop: %s (%s)", res, why)
		}
		s.waitMountSeen(false)
	}
}

// waitMountSeen waits until the mount table the manager follows shows the
// mount (or no longer does): a stop and a start in quick succession must
// not meet the table's event of the mount before.
func (s *automountSetup) waitMountSeen(seen bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for (s.prop(s.mount, "MountID") != "") != seen {
		if time.Now().After(deadline) {
			a, sub := s.state(s.mount)
			_, real := isMounted(s.t, s.where)
			s.t.Fatalf("%s (%s/%s): MountID %q after 30s, want seen=%v (kernel table: %v)\n%s", s.mount, a, sub, s.prop(s.mount, "MountID"), seen, real, s.logText())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
