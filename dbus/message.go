package dbus

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// busName is the well-known name Vigil answers to.
const busName = "org.freedesktop.systemd1"

// propEntry is one property in a GetAll answer or a PropertiesChanged
// signal. A slice of them encodes exactly like a dictionary a{sv} (arrays of
// structs and of dict entries share their wire layout) but keeps its order,
// which `systemctl show` prints; encodeReply rewrites the signature.
type propEntry struct {
	Name  string
	Value dbus.Variant
}

// replyTo builds a method return for call. On the bus a reply needs the
// caller as destination; on a peer-to-peer connection systemd sets none.
func replyTo(call *dbus.Message, onBus bool, body ...any) *dbus.Message {
	msg := &dbus.Message{Type: dbus.TypeMethodReply, Flags: dbus.FlagNoReplyExpected,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldReplySerial: dbus.MakeVariant(call.Serial()),
		}, Body: body}
	addRouting(msg, call, onBus)
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	return msg
}

// errorTo builds an error reply for call.
func errorTo(call *dbus.Message, onBus bool, name, text string) *dbus.Message {
	sender, _ := call.Headers[dbus.FieldSender].Value().(string)
	return errorToSerial(call.Serial(), sender, onBus, name, text)
}

// errorToSerial builds an error reply to the call with that serial (and, on
// the bus, that sender).
func errorToSerial(serial uint32, sender string, onBus bool, name, text string) *dbus.Message {
	msg := &dbus.Message{Type: dbus.TypeError, Flags: dbus.FlagNoReplyExpected,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldReplySerial: dbus.MakeVariant(serial),
			dbus.FieldErrorName:   dbus.MakeVariant(name),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(text)),
		}, Body: []any{text}}
	switch {
	case onBus && sender != "":
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(sender)
	case !onBus:
		msg.Headers[dbus.FieldSender] = dbus.MakeVariant(busName)
	}
	return msg
}

func addRouting(msg, call *dbus.Message, onBus bool) {
	if onBus {
		if sender, ok := call.Headers[dbus.FieldSender].Value().(string); ok && sender != "" {
			msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(sender)
		}
		return
	}
	msg.Headers[dbus.FieldSender] = dbus.MakeVariant(busName)
}

// signalMessage builds a signal; the sender is set per connection kind by
// the broadcaster (see Server.broadcast).
func signalMessage(path dbus.ObjectPath, iface, member string, body ...any) *dbus.Message {
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:      dbus.MakeVariant(path),
		dbus.FieldInterface: dbus.MakeVariant(iface),
		dbus.FieldMember:    dbus.MakeVariant(member),
	}, Body: body}
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	return msg
}

// encodeWire encodes msg and turns every a(sv) made of propEntry in its
// signature into a{sv}.
func encodeWire(msg *dbus.Message) ([]byte, error) {
	if len(msg.Body) == 1 {
		if body, ok := msg.Body[0].(wireBody); ok {
			return encodeWireBody(msg, body)
		}
	}
	frame, err := encodeMessage(msg)
	if err != nil {
		return nil, err
	}
	sigv, ok := msg.Headers[dbus.FieldSignature]
	if !ok {
		return frame, nil
	}
	sig, _ := sigv.Value().(dbus.Signature)
	have := sig.String()
	if !bytes.Contains([]byte(have), []byte("a(sv)")) || !hasPropEntries(msg.Body) {
		return frame, nil
	}
	want := bytes.ReplaceAll([]byte(have), []byte("a(sv)"), []byte("a{sv}"))
	fieldsEnd := 16 + int(binary.LittleEndian.Uint32(frame[12:16]))
	old := append(append([]byte{byte(len(have))}, have...), 0)
	i := bytes.Index(frame[16:fieldsEnd], old)
	if i < 0 {
		return nil, fmt.Errorf("encode: signature %q not found in header", have)
	}
	copy(frame[16+i+1:], want)
	return frame, nil
}

func hasPropEntries(body []any) bool {
	for _, v := range body {
		if _, ok := v.([]propEntry); ok {
			return true
		}
	}
	return false
}
