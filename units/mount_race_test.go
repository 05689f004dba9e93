package units

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/mountinfo"
	"vigil/units/api"
)

// mountRaceHarness drives a mount unit whose mount calls are fakes and
// whose mount table events the test posts itself, each stamped with the
// time the kernel's table would have been read: the order of calls and
// table reads is the test's, not the scheduler's.
type mountRaceHarness struct {
	*harness
	table *observer.Source
	fake  *fakeMounts
	where string
	name  string
}

func newMountRaceHarness(t *testing.T) *mountRaceHarness {
	t.Helper()
	dir := t.TempDir()
	where := filepath.Join(dir, "quick")
	name := mountName(t, where)
	h := newHarness(t, map[string]string{name: tmpfsUnit(where, "size=1m")})
	r := &mountRaceHarness{harness: h, fake: &fakeMounts{}, where: where, name: name}
	h.do(func() { h.m.mounts.sys = r.fake })
	r.table = h.loop.NewSource(MountSource, 64)
	return r
}

// post sends one mount table change read at readAt (0: when the loop
// dispatches it) and waits until the manager's table has taken it.
func (r *mountRaceHarness) post(kind string, id int, readAt time.Duration) {
	r.t.Helper()
	mt := mountinfo.Mount{ID: id, ParentID: 1, MountPoint: r.where, Source: "vigiltest", FSType: "tmpfs", Options: "rw"}
	if !r.table.Post(observer.Event{Kind: kind, Mono: readAt, Payload: mt}) {
		r.t.Fatal("mount table source full")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var taken bool
		r.do(func() { _, in := r.m.mounts.byID[id]; taken = in == (kind != mountinfo.KindUmount) })
		if taken {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the manager never took the %s of mount %d", kind, id)
		}
		time.Sleep(time.Millisecond)
	}
}

// now is the loop's clock: the read time of a table read now.
func (r *mountRaceHarness) now() time.Duration { return r.loop.Now() }

func (r *mountRaceHarness) wantState(when, want string) {
	r.t.Helper()
	if a, s := r.state(r.name); a != want {
		r.t.Fatalf("%s: unit %s/%s, want %s\n%s", when, a, s, want, r.logText())
	}
}

// TestLateMountEventAfterQuickStopKeepsUnitInactive: the unit is mounted
// and stopped again before the table is read; the read that still shows
// the mount arrives after the stop. The unit must not turn active for it,
// and a start meanwhile must mount again instead of taking the dying
// mount for its own. A mount read after the stop (someone else's) still
// makes the unit active.
func TestLateMountEventAfterQuickStopKeepsUnitInactive(t *testing.T) {
	r := newMountRaceHarness(t)
	if res, why := r.start(r.name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	readWhileMounted := r.now() // the table read that will come late
	if res, why := r.stop(r.name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	r.wantState("after the stop", "inactive")

	r.post(mountinfo.KindMount, 40, readWhileMounted)
	r.wantState("after the late mount event", "inactive")

	// Started again before the table's umount event: a real mount call.
	if res, why := r.start(r.name); res != api.ResultDone {
		t.Fatalf("second start: %s (%s)", res, why)
	}
	if n := r.fake.count(); n != 2 {
		t.Fatalf("%d mount calls, want 2: the second start took the unmounted mount for its own", n)
	}
	if res, why := r.stop(r.name); res != api.ResultDone {
		t.Fatalf("second stop: %s (%s)", res, why)
	}
	r.post(mountinfo.KindUmount, 40, r.now())
	r.wantState("after the umount event", "inactive")

	// A mount read after the stop is somebody else's: the unit follows.
	r.post(mountinfo.KindMount, 41, 0)
	r.wantState("after a new mount by someone else", "active")
}

// TestLateUmountEventAfterQuickRestartKeepsUnitActive is the mirror: the
// unit is stopped and started again before the table shows the first
// mount gone; that late umount event must not make the new mount's unit
// inactive ("unmounted by someone else").
func TestLateUmountEventAfterQuickRestartKeepsUnitActive(t *testing.T) {
	r := newMountRaceHarness(t)
	if res, why := r.start(r.name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	r.post(mountinfo.KindMount, 50, 0)
	if res, why := r.stop(r.name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	readWhileUnmounted := r.now()
	if res, why := r.start(r.name); res != api.ResultDone {
		t.Fatalf("restart: %s (%s)", res, why)
	}
	r.post(mountinfo.KindUmount, 50, readWhileUnmounted)
	r.wantState("after the late umount event", "active")
	if strings.Contains(r.logText(), "Unmounted by someone else") {
		t.Errorf("the late event was taken for a foreign unmount:\n%s", r.logText())
	}
	// The new mount's own events, and an unmount read after the restart,
	// are followed as before.
	r.post(mountinfo.KindMount, 51, 0)
	r.post(mountinfo.KindUmount, 51, 0)
	r.wantState("after an unmount by someone else", "inactive")
}

// gatedMounts holds every mount call until the test opens the gate, then
// lets it succeed.
type gatedMounts struct{ gate chan struct{} }

func (g *gatedMounts) Mount(string, string, string, uintptr, string) error {
	<-g.gate
	return nil
}
func (g *gatedMounts) Unmount(string, int) error { return nil }

// TestMountEventDuringOwnMountCallWaitsForTheCall: the table shows the
// mount point mounted while the unit's own mount call has not returned
// (a bind mount before its read-only remount): the start job must not
// end on it, only on the call's return.
func TestMountEventDuringOwnMountCallWaitsForTheCall(t *testing.T) {
	r := newMountRaceHarness(t)
	gate := &gatedMounts{gate: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-gate.gate:
		default:
			close(gate.gate)
		}
	})
	r.do(func() { r.m.mounts.sys = gate })
	done := make(chan string, 1)
	go func() { res, why := r.start(r.name); done <- res + " " + why }()
	r.waitState(r.name, "activating", 10*time.Second)
	r.post(mountinfo.KindMount, 60, 0)
	r.wantState("after the table showed the first step", "activating")
	select {
	case res := <-done:
		t.Fatalf("the start job ended (%s) before its mount call returned", res)
	default:
	}
	close(gate.gate)
	select {
	case res := <-done:
		if !strings.HasPrefix(res, api.ResultDone) {
			t.Fatalf("start: %s", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the start job did not end after the mount call returned")
	}
	r.wantState("after the call returned", "active")
}
