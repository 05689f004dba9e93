package dbus

import (
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// TestPropertyTypes checks that every property returns exactly its declared
// D-Bus type, for units with and without state: sd-bus's typed readers fail
// on any other type.
func TestPropertyTypes(t *testing.T) {
	tb := buildTables()
	mem := uint64(1 << 20)
	now := time.Now()
	objects := []*object{
		{kind: kindUnit, unit: &UnitProps{ID: "a.service", LoadState: "loaded", ActiveEnter: now, JobID: 3,
			Service: &ServiceProps{MainPID: 5, MemoryCurrent: &mem, ExecStart: []ExecCommand{{Path: "/bin/true", Argv: []string{"true"}, Start: now}}}}},
		{kind: kindUnit, unit: func() *UnitProps { u := notFoundUnit("b.service"); return &u }()},
		{kind: kindManager, info: &ManagerInfo{Version: "1", UserspaceTimestamp: now}},
		{kind: kindJob, job: &Job{ID: 7, Unit: "a.service", Type: "start", State: "running"}},
	}
	all := []*iface{tb.manager, tb.unit, tb.service, tb.socket, tb.target, tb.job, tb.mount, tb.timer, tb.path,
		tb.slice, tb.scope, tb.device, tb.automount, tb.swap}
	for _, ifc := range all {
		seen := map[string]bool{}
		for _, p := range ifc.props {
			if seen[p.name] {
				t.Errorf("%s.%s is declared twice", ifc.name, p.name)
			}
			seen[p.name] = true
			if _, err := dbus.ParseSignature(p.sig); err != nil {
				t.Errorf("%s.%s: bad signature %q", ifc.name, p.name, p.sig)
			}
			for _, o := range objects {
				if (ifc == tb.manager) != (o.kind == kindManager) || (ifc == tb.job) != (o.kind == kindJob) {
					continue
				}
				if got := dbus.SignatureOf(p.get(o)).String(); got != p.sig {
					t.Errorf("%s.%s returns %s, declared %s", ifc.name, p.name, got, p.sig)
				}
			}
		}
	}
}

// TestGetAllEncodesDictionary checks the a(sv)→a{sv} rewrite: a decoder
// sees a dictionary in the order it was built.
func TestGetAllEncodesDictionary(t *testing.T) {
	call := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(managerPath), dbus.FieldMember: dbus.MakeVariant("GetAll")}}
	entries := []propEntry{{"B", dbus.MakeVariant("x")}, {"A", dbus.MakeVariant(uint32(1))}}
	frame, err := encodeWire(replyTo(call, false, entries))
	if err != nil {
		t.Fatal(err)
	}
	setSerial(frame, 1)
	msg, err := decodeFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := msg.Body[0].(map[string]dbus.Variant)
	if !ok || len(m) != 2 || m["A"].Value() != uint32(1) || m["B"].Value() != "x" {
		t.Fatalf("decoded %#v", msg.Body)
	}
}
