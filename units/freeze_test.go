package units

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
)

// tickerService rewrites DIR/tick with a new value ten times a second, so
// a test sees whether its process runs.
const tickerService = "[service]\nexec-start = \"/bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i > @DIR@/tick.new; mv @DIR@/tick.new @DIR@/tick; sleep 0.1; done'\"\n"

func readTick(t *testing.T, dir string) string {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(dir, "tick"))
	return string(data)
}

// waitTicking waits until the ticker's file changes.
func waitTicking(t *testing.T, dir, what string) {
	t.Helper()
	before := readTick(t, dir)
	waitUntil(t, what, func() bool { return readTick(t, dir) != before })
}

func TestFreezeThawService(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{"ticker.service": tickerService, "done.service": "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n"})
	if _, err := os.Stat(tree.Path("") + "/cgroup.freeze"); err != nil {
		t.Skipf("no cgroup v2 freezer: %v", err)
	}
	if res, why := h.start("ticker.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	waitTicking(t, h.dir, "the ticker to run")
	var err error
	h.do(func() { err = h.m.Freeze("ticker.service") })
	if err != nil {
		t.Fatal(err)
	}
	var state string
	waitUntil(t, "FreezerState frozen", func() bool {
		h.do(func() { state = h.m.FreezerState("ticker.service") })
		return state == FreezerFrozen
	})
	// Frozen: the file stops changing. The kernel said "frozen 1", so
	// no task of the group can run; one look after a pause checks it.
	frozenAt := readTick(t, h.dir)
	time.Sleep(500 * time.Millisecond)
	if now := readTick(t, h.dir); now != frozenAt {
		t.Fatalf("the frozen ticker went on: %q then %q", frozenAt, now)
	}
	if a, _ := h.state("ticker.service"); a != "active" {
		t.Errorf("a frozen unit is %s, want active", a)
	}

	h.do(func() { err = h.m.Thaw("ticker.service") })
	if err != nil {
		t.Fatal(err)
	}
	waitTicking(t, h.dir, "the thawed ticker to run again")
	h.do(func() { state = h.m.FreezerState("ticker.service") })
	if state != FreezerRunning {
		t.Errorf("after thaw FreezerState %s", state)
	}

	// A unit that is not running, and one whose type has no cgroup,
	// say why.
	if res, why := h.start("done.service"); res != api.ResultDone {
		t.Fatalf("start done.service: %s (%s)", res, why)
	}
	h.do(func() { err = h.m.Freeze("done.service") })
	if !errors.Is(err, ErrFreezeUnitInactive) {
		t.Errorf("freeze of an inactive service: %v, want ErrFreezeUnitInactive", err)
	}
	h.do(func() { err = h.m.Freeze("no-such.service") })
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Errorf("freeze of a missing unit: %v", err)
	}
}

// A frozen service still stops cleanly: it is thawed first, so its SIGTERM
// handler runs rather than the stop timeout's SIGKILL ending it.
func TestFrozenServiceStops(t *testing.T) {
	h, tree := newCgroupHarness(t, map[string]string{"ticker.service": "[service]\nexec-start = \"/bin/sh @DIR@/trap.sh\"\ntimeout-stop = \"10s\"\n"})
	script := "exec >/dev/null 2>&1\ntrap 'echo bye > " + h.dir + "/bye; exit 0' TERM\ntouch " + h.dir + "/ready\nwhile :; do sleep 0.1; done\n"
	if err := os.WriteFile(filepath.Join(h.dir, "trap.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree.Path("") + "/cgroup.freeze"); err != nil {
		t.Skipf("no cgroup v2 freezer: %v", err)
	}
	if res, why := h.start("ticker.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	waitUntil(t, "the TERM handler to be set", func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "ready"))
		return err == nil
	})
	var err error
	h.do(func() { err = h.m.Freeze("ticker.service") })
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "FreezerState frozen", func() bool {
		var state string
		h.do(func() { state = h.m.FreezerState("ticker.service") })
		return state == FreezerFrozen
	})
	if res, why := h.stop("ticker.service"); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	if a, _ := h.state("ticker.service"); a != "inactive" {
		t.Errorf("after stop: %s", a)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "bye")); err != nil {
		h.mu.Lock()
		t.Errorf("the TERM handler did not run (killed at the stop timeout?): %v\n%s", err, strings.Join(h.logs, "\n"))
		h.mu.Unlock()
	}
}

func TestFreezerStateFromCgroupFiles(t *testing.T) {
	for _, c := range []struct {
		asked  bool
		events string
		want   string
	}{
		{false, "populated 1\nfrozen 0\n", FreezerRunning},
		{true, "populated 1\nfrozen 0\n", FreezerFreezing},
		{true, "populated 1\nfrozen 1\n", FreezerFrozen},
		{false, "populated 1\nfrozen 1\n", FreezerThawing},
		{false, "populated 1\n", FreezerRunning},
		{true, "", FreezerFreezing},
	} {
		if got := freezerState(c.asked, eventsFrozen(c.events)); got != c.want {
			t.Errorf("asked=%v events=%q: %s, want %s", c.asked, c.events, got, c.want)
		}
	}
}

// FuzzEventsFrozen: any cgroup.events text parses without a panic, and
// the answer is the value of its first "frozen" key.
func FuzzEventsFrozen(f *testing.F) {
	f.Add("populated 1\nfrozen 0\n")
	f.Add("populated 0\nfrozen 1\n")
	f.Add("frozen 1")
	f.Add("frozen\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, events string) {
		got := eventsFrozen(events)
		want := false
		for _, line := range strings.Split(events, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == "frozen" {
				want = strings.TrimSpace(v) == "1"
				break
			}
		}
		if got != want {
			t.Fatalf("eventsFrozen(%q) = %v, want %v", events, got, want)
		}
		// A file without the key, followed by "frozen 1", is frozen.
		if !strings.Contains(events, "frozen") && !eventsFrozen(events+"\nfrozen 1\n") {
			t.Fatalf("%q + frozen 1 not frozen", events)
		}
	})
}
