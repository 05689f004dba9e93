package dbus

import (
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"
)

// BenchmarkListUnits1000 measures ListUnits over the private socket with
// 1,000 loaded units (what `systemctl list-units` costs the server).
func BenchmarkListUnits1000(b *testing.B) {
	files := map[string]string{}
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("u%04d.service", i)] = "[service]\nexec-start = \"/bin/true\"\n"
	}
	h := newHarness(b, files)
	conn, err := dbus.Dial("unix:path=" + h.sock)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		b.Fatal(err)
	}
	mgr := conn.Object(busName, managerPath)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var rows []unitRow
		if err := mgr.Call(ifaceManager+".ListUnitsByPatterns", 0, []string{}, []string{}).Store(&rows); err != nil {
			b.Fatal(err)
		}
		if len(rows) < 1000 {
			b.Fatalf("%d rows", len(rows))
		}
	}
}

// BenchmarkGetAllService measures `systemctl status`'s main call.
func BenchmarkGetAllService(b *testing.B) {
	h := newHarness(b, testUnits())
	conn, err := dbus.Dial("unix:path=" + h.sock)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		b.Fatal(err)
	}
	obj := conn.Object(busName, UnitPath("sleeper.service"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var all map[string]dbus.Variant
		if err := obj.Call(ifaceProperties+".GetAll", 0, "").Store(&all); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPing is the floor: one round trip that does not visit the
// manager's loop.
func BenchmarkPing(b *testing.B) {
	h := newHarness(b, testUnits())
	conn, err := dbus.Dial("unix:path=" + h.sock)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		b.Fatal(err)
	}
	obj := conn.Object(busName, managerPath)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := obj.Call(ifacePeer+".Ping", 0).Err; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAllService1000Units is GetAll("") of one service while
// 1,000 units are loaded: the unit-file state, which used to be found by
// reading every unit directory on each call, now comes from a cache.
func BenchmarkGetAllService1000Units(b *testing.B) {
	files := testUnits()
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("u%04d.service", i)] = "[service]\nexec-start = \"/bin/true\"\n[install]\nwanted-by = [\"test.target\"]\n"
	}
	h := newHarness(b, files)
	conn, err := dbus.Dial("unix:path=" + h.sock)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		b.Fatal(err)
	}
	obj := conn.Object(busName, UnitPath("sleeper.service"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var all map[string]dbus.Variant
		if err := obj.Call(ifaceProperties+".GetAll", 0, "").Store(&all); err != nil {
			b.Fatal(err)
		}
	}
}
