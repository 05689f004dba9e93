package dbus

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// settle starts the named units through the adapter and waits until none
// of them is activating or has a job.
func settle(t *testing.T, a Manager, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := a.Enqueue(n, "start", "replace"); err != nil {
			t.Fatalf("start %s: %v", n, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		busy := false
		for _, n := range names {
			p, _, err := a.Unit(n)
			if err != nil {
				t.Fatal(err)
			}
			if p.JobID != 0 || p.ActiveState == "activating" {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("units %v did not settle", names)
}

// Every brief property reads the same from the brief description as from
// the full one, for units in different states, a unit not loaded, and a
// unit whose file changed (NeedDaemonReload).
func TestBriefPropertiesMatchFull(t *testing.T) {
	h := newHarness(t, testUnits())
	a := NewUnitsAdapter(h.loop, h.m)
	b, ok := a.(unitBriefer)
	if !ok {
		t.Fatal("the units adapter does not describe units briefly")
	}
	settle(t, a, "sleeper.service", "once.service", "fail.service")
	brief := 0
	for _, p := range h.srv.t.unit.props {
		if briefUnitProperty(p.name) {
			brief++
		}
	}
	if brief != 23 {
		t.Errorf("%d Unit properties are brief, want 23 (a name in briefUnitProperty is misspelt?)", brief)
	}
	compare := func(name string, wantReload bool) {
		t.Helper()
		full, found, err := a.Unit(name)
		if err != nil {
			t.Fatal(err)
		}
		short, foundBrief, err := b.UnitBrief(name)
		if err != nil {
			t.Fatal(err)
		}
		if found != foundBrief {
			t.Fatalf("%s: Unit found=%v, UnitBrief found=%v", name, found, foundBrief)
		}
		if !found {
			full, short = notFoundUnit(name), notFoundUnit(name)
		}
		if full.NeedDaemonReload != wantReload {
			t.Errorf("%s: NeedDaemonReload %v, want %v", name, full.NeedDaemonReload, wantReload)
		}
		p := UnitPath(name)
		fo, bo := h.srv.unitObject(p, &full), h.srv.unitObject(p, &short)
		for _, prop := range h.srv.t.unit.props {
			if !briefUnitProperty(prop.name) {
				continue
			}
			fv, bv := prop.get(fo), prop.get(bo)
			if strings.HasSuffix(prop.name, "Monotonic") {
				// Converted from wall time at each read: allow the
				// microseconds between the two reads.
				d := int64(fv.(uint64)) - int64(bv.(uint64))
				if d < -5000 || d > 5000 || (fv.(uint64) == 0) != (bv.(uint64) == 0) {
					t.Errorf("%s.%s: full %v, brief %v", name, prop.name, fv, bv)
				}
				continue
			}
			if !reflect.DeepEqual(fv, bv) {
				t.Errorf("%s.%s: full %#v, brief %#v", name, prop.name, fv, bv)
			}
		}
	}
	for _, name := range []string{"sleeper.service", "once.service", "fail.service", "test.target", "-.slice", "missing.service"} {
		compare(name, false)
	}
	if err := os.WriteFile(filepath.Join(h.units, "once.service"), []byte(testUnits()["once.service"]+"# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	compare("once.service", true)
}

// countingManager counts full and brief unit descriptions.
type countingManager struct {
	Manager
	full, brief atomic.Int32
}

func (c *countingManager) Unit(name string) (UnitProps, bool, error) {
	c.full.Add(1)
	return c.Manager.Unit(name)
}

func (c *countingManager) UnitBrief(name string) (UnitProps, bool, error) {
	c.brief.Add(1)
	return c.Manager.(unitBriefer).UnitBrief(name)
}

// A Get of a brief property (systemctl's NeedDaemonReload after a start)
// does not gather the unit's full description; other properties and
// GetAll still do, and the answers are right.
func TestGetBriefPropertySkipsFullDescription(t *testing.T) {
	h := newHarness(t, testUnits())
	cm := &countingManager{Manager: NewUnitsAdapter(h.loop, h.m)}
	settle(t, cm.Manager, "sleeper.service")
	srv, err := NewServer(cm, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sock := filepath.Join(h.dir, "counted")
	if err := srv.ListenPrivate(sock); err != nil {
		t.Fatal(err)
	}
	conn := godbusClient(t, sock)
	get := func(ifc, prop string) any {
		t.Helper()
		v, err := conn.Object(busName, UnitPath("sleeper.service")).GetProperty(ifc + "." + prop)
		if err != nil {
			t.Fatalf("Get %s.%s: %v", ifc, prop, err)
		}
		return v.Value()
	}
	get0 := func(prop string) any {
		t.Helper()
		var v dbus.Variant
		if err := conn.Object(busName, UnitPath("sleeper.service")).Call(ifaceProperties+".Get", 0, "", prop).Store(&v); err != nil {
			t.Fatalf("Get %s with no interface: %v", prop, err)
		}
		return v.Value()
	}
	if v := get(ifaceUnit, "NeedDaemonReload"); v != false {
		t.Errorf("NeedDaemonReload = %v", v)
	}
	if v := get0("ActiveState"); v != "active" {
		t.Errorf("ActiveState (no interface named) = %v", v)
	}
	if n, m := cm.full.Load(), cm.brief.Load(); n != 0 || m != 2 {
		t.Errorf("two brief Gets: %d full and %d brief descriptions, want 0 and 2", n, m)
	}
	if v, ok := get(ifaceService, "MainPID").(uint32); !ok || v == 0 {
		t.Errorf("MainPID = %v", v)
	}
	if n := cm.full.Load(); n != 1 {
		t.Errorf("a Get of MainPID made %d full descriptions, want 1", n)
	}
	if v := get0("Result"); v != "success" {
		t.Errorf("Result (the Service interface's, no interface named) = %v", v)
	}
	// Unknown names and interfaces keep their errors.
	if _, err := conn.Object(busName, UnitPath("sleeper.service")).GetProperty(ifaceUnit + ".NoSuchThing"); err == nil {
		t.Error("Get of an unknown property succeeded")
	}
	if _, err := conn.Object(busName, UnitPath("sleeper.service")).GetProperty("org.example.Nothing.Id"); err == nil {
		t.Error("Get of Id on an unknown interface succeeded")
	}
	if v, err := conn.Object(busName, UnitPath("nothing-here.service")).GetProperty(ifaceUnit + ".LoadState"); err != nil || v.Value() != "not-found" {
		t.Errorf("LoadState of a unit not loaded: %v, %v", v, err)
	}
}

// BenchmarkGetNeedDaemonReload is the Get systemctl sends after every
// start, for a running service with 1,000 other units loaded.
func BenchmarkGetNeedDaemonReload(b *testing.B) {
	files := testUnits()
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("u%04d.service", i)] = "[service]\nexec-start = \"/bin/true\"\n"
	}
	h := newHarness(b, files)
	conn := godbusClient(b, h.sock)
	obj := conn.Object(busName, UnitPath("sleeper.service"))
	if err := conn.Object(busName, managerPath).Call(ifaceManager+".StartUnit", 0, "sleeper.service", "replace").Err; err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if _, err := obj.GetProperty(ifaceUnit + ".NeedDaemonReload"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
