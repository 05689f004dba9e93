package dbus

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// godbusClient connects godbus's own client to the private socket: its
// handshake is the bare AUTH / AUTH EXTERNAL <hex uid> form.
func godbusClient(t testing.TB, sock string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Dial("unix:path=" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Auth(nil); err != nil {
		t.Fatalf("auth: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dbusErrorName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	return ""
}

func TestGodbusClientCalls(t *testing.T) {
	h := newHarness(t, testUnits())
	conn := godbusClient(t, h.sock)
	mgr := conn.Object(busName, managerPath)

	var unitPath dbus.ObjectPath
	if err := mgr.Call(ifaceManager+".GetUnit", 0, "once.service").Store(&unitPath); err != nil {
		t.Fatal(err)
	}
	if unitPath != "/org/freedesktop/systemd1/unit/once_2eservice" {
		t.Errorf("GetUnit = %s", unitPath)
	}
	// GetAll("") merges the interfaces, the type's own first.
	var all map[string]dbus.Variant
	if err := conn.Object(busName, unitPath).Call(ifaceProperties+".GetAll", 0, "").Store(&all); err != nil {
		t.Fatal(err)
	}
	// (godbus rebuilds a variant's signature from the decoded value, which
	// turns structs into av: struct types are checked with busctl instead.)
	for name, sig := range map[string]string{"Type": "s", "MainPID": "u", "Id": "s", "Names": "as",
		"MemoryCurrent": "t", "ActiveState": "s", "ExecMainCode": "i", "ConditionResult": "b"} {
		v, ok := all[name]
		if !ok {
			t.Errorf("GetAll(\"\") lacks %s", name)
			continue
		}
		if v.Signature().String() != sig {
			t.Errorf("%s has type %s, want %s", name, v.Signature(), sig)
		}
	}
	if v := all["MemoryCurrent"].Value(); v != uint64(unknownU64) {
		t.Errorf("MemoryCurrent of an inactive unit = %v, want UINT64_MAX", v)
	}

	// Bad input gets typed errors.
	for _, tc := range []struct {
		obj    dbus.BusObject
		method string
		args   []any
		want   string
	}{
		{mgr, ifaceManager + ".NoSuchThing", nil, ErrNameUnknownMethod},
		{mgr, "org.example.Nope.Thing", nil, ErrNameUnknownInterface},
		{mgr, ifaceManager + ".StartUnit", []any{"once.service"}, ErrNameInvalidArgs},
		{mgr, ifaceManager + ".StartUnit", []any{"../etc/passwd", "replace"}, ErrNameInvalidArgs},
		{mgr, ifaceManager + ".StartUnit", []any{"once.service", "sideways"}, ErrNameInvalidArgs},
		{mgr, ifaceManager + ".GetUnit", []any{"nonexist.service"}, ErrNameNoSuchUnit},
		{mgr, ifaceManager + ".GetJob", []any{uint32(999)}, ErrNameNoSuchJob},
		{mgr, ifaceProperties + ".Get", []any{ifaceManager, "NoSuchProperty"}, ErrNameUnknownProperty},
		{mgr, ifaceProperties + ".Set", []any{ifaceManager, "LogLevel", dbus.MakeVariant("debug")}, ErrNamePropertyReadOnly},
		{conn.Object(busName, "/org/freedesktop/systemd1/unit/not_a_unit"), ifaceProperties + ".GetAll", []any{""}, ErrNameUnknownObject},
		{conn.Object(busName, "/org/freedesktop/systemd1/job/12345"), ifaceProperties + ".GetAll", []any{""}, ErrNameUnknownObject},
		{conn.Object(busName, "/elsewhere"), ifaceIntrospect + ".Introspect", nil, ErrNameUnknownObject},
	} {
		err := tc.obj.Call(tc.method, 0, tc.args...).Err
		if got := dbusErrorName(err); got != tc.want {
			t.Errorf("%s%v: error %v (%q), want %s", tc.method, tc.args, err, got, tc.want)
		}
	}
	// Huge argument arrays are answered, not choked on.
	names := make([]string, 20000)
	for i := range names {
		names[i] = "x" + strings.Repeat("y", 10) + ".service"
	}
	var rows []unitRow
	if err := mgr.Call(ifaceManager+".ListUnitsByNames", 0, names).Store(&rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(names) || rows[0].LoadState != "not-found" {
		t.Errorf("ListUnitsByNames of unknown names: %d rows, first %+v", len(rows), rows[0])
	}
}

func TestJobSignals(t *testing.T) {
	h := newHarness(t, testUnits())
	conn := godbusClient(t, h.sock)
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	var job dbus.ObjectPath
	if err := conn.Object(busName, managerPath).Call(ifaceManager+".StartUnit", 0, "once.service", "replace").Store(&job); err != nil {
		t.Fatal(err)
	}
	var sawNew bool
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-sigs:
			switch s.Name {
			case ifaceManager + ".JobNew":
				sawNew = sawNew || s.Body[1] == job
			case ifaceManager + ".JobRemoved":
				if s.Body[1] != job {
					continue
				}
				if !sawNew {
					t.Error("JobRemoved came without JobNew")
				}
				if s.Body[2] != "once.service" || s.Body[3] != "done" {
					t.Errorf("JobRemoved body %v", s.Body)
				}
				if s.Sender != busName {
					t.Errorf("signal sender %q", s.Sender)
				}
				return
			}
		case <-deadline:
			t.Fatal("no JobRemoved for", job)
		}
	}
}

// TestSlowClientNeverBlocks: a client that authenticates and then never
// reads loses signals (counted) while the manager and other clients go on.
func TestSlowClientNeverBlocks(t *testing.T) {
	h := newHarness(t, testUnits())
	raw, err := net.Dial("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("\x00AUTH EXTERNAL 30\r\nBEGIN\r\n")); err != nil {
		t.Fatal(err)
	}
	good := godbusClient(t, h.sock)
	// Flood: far more signal bytes than the socket buffer and queue hold.
	big := strings.Repeat("x", 4096)
	for i := 0; i < 20000; i++ {
		h.srv.post(Event{Kind: EventUnitChanged, Unit: "once.service", ActiveState: big, SubState: big})
		if i%512 == 0 {
			time.Sleep(time.Millisecond) // let the broadcaster drain the event queue
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.Stats().DroppedSignals == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := h.srv.Stats(); st.DroppedSignals == 0 {
		t.Fatalf("no signals dropped for the stalled client: %+v", st)
	}
	// A blocked loop or client never answers; a loaded machine still
	// marshalling the flood answers late.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.loop.Call(ctx, func() {}); err != nil {
		t.Fatalf("the manager's loop is blocked: %v", err)
	}
	if err := good.Object(busName, managerPath).CallWithContext(ctx, ifacePeer+".Ping", 0).Err; err != nil {
		t.Fatalf("another client is blocked: %v", err)
	}
}

// TestGarbageAndDisconnects: broken frames and clients that vanish
// mid-call leave the server serving.
func TestGarbageAndDisconnects(t *testing.T) {
	h := newHarness(t, testUnits())
	for _, junk := range []string{
		"\x00AUTH EXTERNAL 30\r\nBEGIN\r\nZZZZZZZZZZZZZZZZZZZZ",                                                                       // bad byte order
		"\x00AUTH EXTERNAL 30\r\nBEGIN\r\nl\x01\x00\x01\xff\xff\xff\x7f\x01\x00\x00\x00\x00\x00\x00\x00",                              // huge body
		"\x00AUTH EXTERNAL 30\r\nBEGIN\r\nl\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x08\x00\x00\x00\x09\x01u\x00\x00\x00\x00\x00", // bad fields
		"garbage before auth",
	} {
		c, err := net.Dial("unix", h.sock)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(junk))
		c.Close()
	}
	// A client that sends a call and disconnects at once.
	for i := 0; i < 20; i++ {
		conn := godbusClient(t, h.sock)
		conn.Object(busName, managerPath).Go(ifaceManager+".StartUnit", 0, nil, "once.service", "replace")
		conn.Close()
	}
	// Every connection that went away is forgotten (its goroutines ended).
	deadline := time.Now().Add(30 * time.Second)
	for h.srv.Stats().Connections != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.srv.Stats().Connections; n != 0 {
		t.Errorf("%d closed connections are still being served", n)
	}
	conn := godbusClient(t, h.sock)
	var v string
	if err := conn.Object(busName, managerPath).Call(ifaceProperties+".Get", 0, ifaceManager, "Version").Store(&v); err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
}
