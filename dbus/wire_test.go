package dbus

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/godbus/dbus/v5"
)

// FuzzFrame feeds arbitrary bytes to the message reader and decoder, as a
// client would after BEGIN: errors, never panics, never a frame over the
// limit.
func FuzzFrame(f *testing.F) {
	call := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(managerPath),
		dbus.FieldInterface: dbus.MakeVariant(ifaceManager),
		dbus.FieldMember:    dbus.MakeVariant("StartUnit"),
		dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf("a", "b")),
	}, Body: []any{"once.service", "replace"}}
	good, err := encodeMessage(call)
	if err != nil {
		f.Fatal(err)
	}
	setSerial(good, 1)
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte("l\x01\x00\x01\xff\xff\xff\x7f\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("B\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			frame, err := readFrame(r)
			if err != nil {
				return
			}
			if len(frame) > maxMessage {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			frameSerial(frame)
			decodeFrame(frame)
		}
	})
}
