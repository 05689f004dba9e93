package dbus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func sampleRows(n int) []unitRow {
	rows := make([]unitRow, n)
	for i := range rows {
		name := fmt.Sprintf("unit-%d.service", i)
		rows[i] = toUnitRow(UnitStatus{Name: name, Description: fmt.Sprintf("Unit número %d%s", i, strings.Repeat("x", i%5)),
			LoadState: "loaded", ActiveState: "active", SubState: "running"})
		if i%3 == 0 {
			rows[i] = toUnitRow(UnitStatus{Name: name, LoadState: "loaded", ActiveState: "activating", SubState: "start",
				JobID: uint64(i + 1), JobType: "start", Following: "x.device"})
		}
	}
	return rows
}

// TestUnitRowsEncodeAsGodbus: the hand encoder of ListUnits' body gives
// byte for byte what godbus's reflective encoder gives, for empty, small
// and odd-sized lists, and decodes back to the same rows.
func TestUnitRowsEncodeAsGodbus(t *testing.T) {
	call := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(managerPath), dbus.FieldMember: dbus.MakeVariant("ListUnits")}}
	for _, n := range []int{0, 1, 2, 3, 7, 100} {
		rows := sampleRows(n)
		for _, onBus := range []bool{false, true} {
			fast, err := encodeWire(replyTo(call, onBus, unitRows(rows)))
			if err != nil {
				t.Fatalf("%d rows: %v", n, err)
			}
			slow, err := encodeMessage(replyTo(call, onBus, rows))
			if err != nil {
				t.Fatalf("%d rows, godbus: %v", n, err)
			}
			// The header fields come from a map: godbus writes them in
			// any order, so compare the bodies and decode the whole.
			if !bytes.Equal(bodyOf(t, fast), bodyOf(t, slow)) {
				t.Fatalf("%d rows: bodies differ\nfast %x\nslow %x", n, bodyOf(t, fast), bodyOf(t, slow))
			}
			msg, err := dbus.DecodeMessage(bytes.NewReader(fast))
			if err != nil {
				t.Fatalf("%d rows: decode: %v", n, err)
			}
			if sig := msg.Headers[dbus.FieldSignature].Value().(dbus.Signature).String(); sig != "a(ssssssouso)" {
				t.Fatalf("signature %q", sig)
			}
			var back []unitRow
			if err := dbus.Store(msg.Body, &back); err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 && len(back) == 0 {
				continue
			}
			if !reflect.DeepEqual(back, rows) {
				t.Fatalf("%d rows: decoded %+v, want %+v", n, back, rows)
			}
		}
	}
}

func bodyOf(t *testing.T, frame []byte) []byte {
	t.Helper()
	body := int(binary.LittleEndian.Uint32(frame[4:8]))
	if len(frame) < body {
		t.Fatalf("frame of %d bytes, body of %d", len(frame), body)
	}
	return frame[len(frame)-body:]
}

// TestUnitRowsRejectBadStrings: what godbus refuses to encode (not UTF-8,
// NUL bytes, bad object paths) the hand encoder refuses too, with an error
// rather than a panic.
func TestUnitRowsRejectBadStrings(t *testing.T) {
	for _, r := range []unitRow{
		{ID: "a\xffb", Path: "/", JobPath: "/"},
		{ID: "a\x00b", Path: "/", JobPath: "/"},
		{ID: "a", Path: "not/a/path", JobPath: "/"},
	} {
		if _, err := unitRows([]unitRow{r}).appendWire(nil); err == nil {
			t.Errorf("%+v encoded without error", r)
		}
	}
}

// TestValidPathAsGodbus: the allocation-free object path check agrees
// with godbus's.
func TestValidPathAsGodbus(t *testing.T) {
	for _, p := range []string{"", "/", "//", "/a", "/a/", "/a//b", "/a/b_2ec", "a/b", "/a-b", "/a.b", "/\xff", "/A/z/0/_", "/a/b/"} {
		if got, want := validPath(p), dbus.ObjectPath(p).IsValid(); got != want {
			t.Errorf("validPath(%q) = %v, godbus says %v", p, got, want)
		}
	}
}

// BenchmarkEncodeListUnits1000 is the encoding of ListUnits' answer with
// 1,000 units, by hand and by godbus's reflection.
func BenchmarkEncodeListUnits1000(b *testing.B) {
	call := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(managerPath), dbus.FieldMember: dbus.MakeVariant("ListUnits")}}
	rows := sampleRows(1000)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeWire(replyTo(call, false, unitRows(rows))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("godbus", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeWire(replyTo(call, false, rows)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
