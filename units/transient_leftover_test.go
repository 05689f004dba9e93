package units

import (
	"os"
	"path/filepath"
	"testing"

	"vigil/units/api"
)

const leftoverUnit = "# Transient unit, made at run time by a D-Bus client (systemd-run).\n" +
	"[unit]\ndescription = \"left over\"\n[service]\ntype = \"oneshot\"\nexec-start = [[\"/bin/true\"]]\n"

// withLeftover writes a transient unit file, and the owner stamp of the
// manager that wrote it, before the manager starts.
func withLeftover(t *testing.T, owner string) func(*Options) {
	return func(o *Options) {
		dir := filepath.Join(o.RuntimeDir, "transient")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "old.service"), []byte(leftoverUnit), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(o.RuntimeDir, "transient.owner"), []byte(owner), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLeftoverTransientUnitsAreRemovedByAFreshManager(t *testing.T) {
	h := newHarnessWith(t, nil, withLeftover(t, "another-boot 4242 17\n"))
	file := filepath.Join(h.dir, "run", "transient", "old.service")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("left-over transient file still there: %v", err)
	}
	var load string
	h.do(func() {
		u, err := h.m.LoadUnit("old.service")
		if err != nil {
			t.Fatal(err)
		}
		load = u.LoadState
	})
	if load != LoadNotFound {
		t.Errorf("old.service loads as %s; a left-over transient unit must not load", load)
	}
	stamp, err := os.ReadFile(filepath.Join(h.dir, "run", "transient.owner"))
	if err != nil || string(stamp) != managerStamp() {
		t.Errorf("owner stamp %q (%v), want %q", stamp, err, managerStamp())
	}
}

func TestTransientUnitsSurviveReexec(t *testing.T) {
	// The same process on the same boot: what a re-executed manager is.
	h := newHarnessWith(t, nil, withLeftover(t, managerStamp()))
	var transient bool
	var state string
	h.do(func() {
		transient = h.m.IsTransient("old.service")
		state = h.m.UnitFileState("old.service")
	})
	if !transient || state != "transient" {
		t.Fatalf("kept unit: transient %v, file state %q", transient, state)
	}
	if res, _ := h.start("old.service"); res != api.ResultDone {
		t.Fatalf("start: %s", res)
	}
	// As a transient unit it is collected once it has run.
	waitFor(t, "the kept transient unit to be collected", func() bool { return h.unitGone("old.service") })
	if _, err := os.Stat(filepath.Join(h.dir, "run", "transient", "old.service")); !os.IsNotExist(err) {
		t.Errorf("collected unit's file still there: %v", err)
	}
}
