package dbus

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

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
	conn := godbusClient(b, h.sock)
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
	conn := godbusClient(b, h.sock)
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
	conn := godbusClient(b, h.sock)
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
	conn := godbusClient(b, h.sock)
	obj := conn.Object(busName, UnitPath("sleeper.service"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var all map[string]dbus.Variant
		if err := obj.Call(ifaceProperties+".GetAll", 0, "").Store(&all); err != nil {
			b.Fatal(err)
		}
	}
}

// rawCall sends method calls as prepared frames and reads the replies
// without decoding them, so that a benchmark measures the server (and the
// socket), not a client library.
type rawCall struct {
	c     *net.UnixConn
	r     *bufio.Reader
	frame []byte
}

func newRawCall(b *testing.B, sock string, path dbus.ObjectPath, iface, member string, args ...any) *rawCall {
	b.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := ClientHandshake(c, c, uint32(os.Getuid())); err != nil {
		b.Fatal(err)
	}
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(path), dbus.FieldInterface: dbus.MakeVariant(iface),
		dbus.FieldMember: dbus.MakeVariant(member), dbus.FieldDestination: dbus.MakeVariant(busName)}, Body: args}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	frame, err := encodeMessage(msg)
	if err != nil {
		b.Fatal(err)
	}
	return &rawCall{c: c, r: bufio.NewReaderSize(c, 1<<20), frame: frame}
}

// do makes one call and returns the size of its reply; signals on the way
// are skipped.
func (rc *rawCall) do(b *testing.B, serial uint32) int {
	setSerial(rc.frame, serial)
	if _, err := rc.c.Write(rc.frame); err != nil {
		b.Fatal(err)
	}
	for {
		reply, err := readFrame(rc.r)
		if err != nil {
			b.Fatal(err)
		}
		if _, typ := frameSerial(reply); typ == dbus.TypeError {
			b.Fatalf("error reply: %q", reply)
		} else if typ == dbus.TypeMethodReply {
			return len(reply)
		}
	}
}

// BenchmarkServeListUnits1000 is the server's side of `systemctl
// list-units` with 1,000 loaded units: ListUnitsByPatterns made on a raw
// socket, the reply (about 150 kB) read without decoding.
func BenchmarkServeListUnits1000(b *testing.B) {
	files := map[string]string{}
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("u%04d.service", i)] = "[service]\nexec-start = \"/bin/true\"\n"
	}
	h := newHarness(b, files)
	rc := newRawCall(b, h.sock, managerPath, ifaceManager, "ListUnitsByPatterns", []string{}, []string{})
	b.ReportAllocs()
	var serial uint32
	cpu := processCPU()
	for b.Loop() {
		serial++
		if n := rc.do(b, serial); n < 100_000 {
			b.Fatalf("reply of %d bytes for 1,000 units", n)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// processCPU is the user and system time of the whole process: under a
// shared machine's load it says more than the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeGetUnit1000 is GetUnit with 1,000 loaded units, which
// systemctl calls after every start.
func BenchmarkServeGetUnit1000(b *testing.B) {
	files := map[string]string{}
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("u%04d.service", i)] = "[service]\nexec-start = \"/bin/true\"\n"
	}
	h := newHarness(b, files)
	rc := newRawCall(b, h.sock, managerPath, ifaceManager, "GetUnit", "u0500.service")
	b.ReportAllocs()
	var serial uint32
	cpu := processCPU()
	for b.Loop() {
		serial++
		rc.do(b, serial)
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
