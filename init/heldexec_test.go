package pid1

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/fanotify"
	"vigil/units/exec"
)

// TestHeldExecSpawnerTrampolinesWhileMarked: PID 1's spawner starts
// programs directly while the fanotify group has no marks, through the exec
// stub (the trampoline where a setting needs it, or where there is no stub)
// while it has one, and directly again once the last is gone.
func TestHeldExecSpawnerTrampolinesWhileMarked(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify permission events need root")
	}
	if spawnerFor(nil, t.Logf) != nil {
		t.Fatal("spawnerFor(nil) is not nil: units would not use its default")
	}
	loop := observer.New(observer.Options{Logf: t.Logf})
	src, err := fanotify.New(fanotify.Options{Loop: loop, Logf: t.Logf})
	if errors.Is(err, fanotify.ErrUnavailable) {
		t.Skipf("fanotify: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	spawner := spawnerFor(src, t.Logf)
	probe, stubErr := exec.NewStub()
	if stubErr == nil {
		probe.Close()
	} else {
		t.Logf("no exec stub here (%v): marked starts go through the trampoline", stubErr)
	}
	spawn := func(what string, wantAround bool, nice *int) {
		t.Helper()
		spec := &exec.Spec{Path: "/bin/true", Argv: []string{"true"}, Nice: nice}
		wantStub := wantAround && nice == nil && stubErr == nil
		wantTrampoline := (wantAround && !wantStub) || nice != nil
		st, err := spawner.Spawn(spec)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(st.PID, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
			t.Fatalf("%s: wait: %v %v", what, err, ws)
		}
		if st.Trampolined != wantTrampoline || st.Stubbed != wantStub {
			t.Errorf("%s: trampolined %v, stubbed %v; want %v, %v", what, st.Trampolined, st.Stubbed, wantTrampoline, wantStub)
		}
		if spec.Trampoline || spec.Stub != nil {
			t.Errorf("%s: the caller's spec was changed", what)
		}
	}
	zero := 0
	spawn("no marks", false, nil)
	file := filepath.Join(t.TempDir(), "held")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := src.Mark(file, fanotify.Open)
	if err != nil {
		t.Fatal(err)
	}
	spawn("a mark elsewhere", true, nil)
	spawn("a mark elsewhere, with a nice level", true, &zero)
	src.Unmark(id)
	spawn("the last mark gone", false, nil)
}
