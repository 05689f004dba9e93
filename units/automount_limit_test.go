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
		if res, why := s.stop(s.mount); res != api.ResultDone {
			t.Fatalf("stop %d: %s (%s)", i+1, res, why)
		}
		s.waitSub(s.autoName, automountWaiting)
	}
	if strings.Contains(s.logText(), "repeated too quickly") {
		t.Fatalf("an automount remount hit the start limit:\n%s", s.logText())
	}
	// Manual starts still count: the third within the interval is refused.
	for i := 1; i <= 3; i++ {
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
		if res, why := s.stop(s.mount); res != api.ResultDone {
			t.Fatalf("stop: %s (%s)", res, why)
		}
	}
}
