package dbus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// FuzzServeCall sends one fuzzed method call to a running server on its
// private socket and checks the one promise every D-Bus client relies on:
// a call that expects a reply gets exactly one, a method return or an
// error, carrying the call's serial. A reply the server cannot encode
// (a name that is not UTF-8 echoed back, say) must still come back as an
// error, or systemctl waits until its time-out.
func FuzzServeCall(f *testing.F) {
	call := func(path dbus.ObjectPath, iface, member string, body ...any) {
		msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:   dbus.MakeVariant(path),
			dbus.FieldMember: dbus.MakeVariant(member),
		}, Body: body}
		if iface != "" {
			msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(iface)
		}
		if len(body) > 0 {
			msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
		}
		frame, err := encodeMessage(msg)
		if err != nil {
			f.Fatal(err)
		}
		setSerial(frame, 1)
		// godbus encodes only UTF-8; clients send what they like: "ÿ"
		// in a seed stands for a byte that is not UTF-8.
		f.Add(bytes.ReplaceAll(frame, []byte("\u00ff"), []byte("\xffx")))
	}
	call(managerPath, ifaceManager, "GetUnit", "a.service")
	call(managerPath, ifaceManager, "GetUnit", "\u00ff.service")
	call(managerPath, ifaceManager, "LoadUnit", "x\u00fe.service")
	call(managerPath, ifaceManager, "ListUnitsByPatterns", []string{"active"}, []string{"*.service"})
	call(managerPath, ifaceManager, "ListUnitsByNames", []string{"a.service", "\u00ff"})
	call(managerPath, ifaceManager, "GetUnitFileState", "a.service")
	call(managerPath, ifaceProperties, "Get", ifaceManager, "Version")
	call(UnitPath("a.service"), ifaceProperties, "GetAll", "")
	call(UnitPath("\u00ff.service"), ifaceProperties, "GetAll", "")
	call("/", ifaceIntrospect, "Introspect")
	call("/org/freedesktop/DBus", ifaceDBus, "GetNameOwner", "org.freedesktop.systemd1")
	call(managerPath, ifaceManager, "GetJob", uint32(7))
	call(managerPath, ifaceManager, "GetUnit", 1, 2)

	// readOnlyMethods are the members the serving fuzzer may call: a fuzzed
	// StartTransientUnit would run fuzzed commands as root on this machine.
	// Frames the server cannot decode are sent whatever they name.
	readOnlyMethods := map[string]bool{
		"GetUnit": true, "GetUnitByPID": true, "LoadUnit": true, "GetUnitProcesses": true, "ListUnits": true,
		"ListUnitsFiltered": true, "ListUnitsByPatterns": true, "ListUnitsByNames": true, "GetJob": true, "ListJobs": true,
		"ListUnitFiles": true, "ListUnitFilesByPatterns": true, "GetUnitFileState": true, "GetUnitByControlGroup": true,
		"GetUnitFileLinks": true, "GetDefaultTarget": true, "Get": true, "GetAll": true, "Introspect": true, "Ping": true,
		"GetMachineId": true, "Hello": true, "AddMatch": true, "RemoveMatch": true, "ListNames": true, "GetNameOwner": true,
		"NameHasOwner": true, "GetConnectionUnixUser": true, "GetConnectionUnixProcessID": true,
		"GetConnectionCredentials": true, "GetId": true, "ListActivatableNames": true, "Subscribe": true, "Unsubscribe": true,
	}
	h := newHarness(f, map[string]string{"a.service": "[service]\nexec-start = [\"/bin/true\"]\n"})
	const serial = 0x4d2
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := readFrame(bufio.NewReader(bytes.NewReader(data)))
		if err != nil || len(frame) < 16 {
			return // the server would wait for the rest, or drop the connection
		}
		if dbus.Type(frame[1]) != dbus.TypeMethodCall {
			return // other types get no reply; unknown ones are ignored, as the spec says
		}
		if msg, err := decodeFrame(frame); err == nil {
			member, _ := msg.Headers[dbus.FieldMember].Value().(string)
			if msg.Type != dbus.TypeMethodCall || !readOnlyMethods[member] {
				return
			}
		}
		frame[2] &^= byte(dbus.FlagNoReplyExpected)
		order := binary.ByteOrder(binary.LittleEndian)
		if frame[0] == 'B' {
			order = binary.BigEndian
		}
		order.PutUint32(frame[8:12], serial)

		c, err := net.Dial("unix", h.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if err := ClientHandshake(c, c, 0); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for {
			got, err := readFrame(r)
			if err != nil {
				t.Fatalf("no reply to call %x: %v", frame, err)
			}
			reply, err := decodeFrame(got)
			if err != nil {
				t.Fatalf("undecodable reply %x: %v", got, err)
			}
			if reply.Type != dbus.TypeMethodReply && reply.Type != dbus.TypeError {
				continue // a signal
			}
			if rs, _ := reply.Headers[dbus.FieldReplySerial].Value().(uint32); rs != serial {
				t.Fatalf("reply to serial %d, want %d: %v (call %x)", rs, serial, reply, frame)
			}
			return
		}
	})
}

// FuzzFrameRoundTrip: a message the server decodes and re-encodes (as it
// does when it forwards or answers) decodes to the same message.
func FuzzFrameRoundTrip(f *testing.F) {
	for _, body := range [][]any{{"a.service", "replace"}, {[]string{"x"}, map[string]dbus.Variant{"A": dbus.MakeVariant(uint64(1))}}, {dbus.ObjectPath("/a"), int32(-1), 1.5, true, []byte{0, 1}}} {
		msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(managerPath),
			dbus.FieldMember:    dbus.MakeVariant("StartUnit"),
			dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body}
		frame, err := encodeMessage(msg)
		if err != nil {
			f.Fatal(err)
		}
		setSerial(frame, 3)
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := decodeFrame(data)
		if err != nil {
			return
		}
		frame, err := encodeMessage(msg)
		if err != nil {
			return // not UTF-8, say: godbus decodes more than it encodes
		}
		again, err := decodeFrame(frame)
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", msg, err)
		}
		if !reflect.DeepEqual(again, msg) {
			t.Fatalf("round trip changed the message:\n%#v\n%#v", msg, again)
		}
	})
}
