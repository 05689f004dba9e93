package dbus

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
)

// wireBody is a reply body that encodes itself: godbus encodes by
// reflection, growing a bytes.Buffer as it goes, which made ListUnits'
// a(ssssssouso) with 1,000 units the largest cost of `systemctl
// list-units` in the server (a quarter of its CPU time, 27,590
// allocations per reply; BenchmarkEncodeListUnits1000). A wireBody appends its
// little-endian encoding to a buffer that starts 8-aligned, as a message
// body does.
type wireBody interface {
	wireSignature() string
	appendWire(b []byte) ([]byte, error)
	// sizeHint is about the encoded size, to allocate the frame once.
	sizeHint() int
}

// unitRows is ListUnits' answer.
type unitRows []unitRow

func (unitRows) wireSignature() string { return "a(ssssssouso)" }

func (rows unitRows) sizeHint() int {
	n := 8
	for i := range rows {
		r := &rows[i]
		n += 8 + 9*8 + len(r.ID) + len(r.Description) + len(r.LoadState) + len(r.ActiveState) +
			len(r.SubState) + len(r.Following) + len(r.Path) + len(r.JobType) + len(r.JobPath)
	}
	return n
}

func (rows unitRows) appendWire(b []byte) ([]byte, error) {
	b = pad(b, 4)
	lenAt := len(b)
	b = append(b, 0, 0, 0, 0)
	b = pad(b, 8) // the array's elements are structs: 8-aligned even when empty
	start := len(b)
	var err error
	for i := range rows {
		r := &rows[i]
		b = pad(b, 8)
		for _, s := range [...]string{r.ID, r.Description, r.LoadState, r.ActiveState, r.SubState, r.Following} {
			if b, err = appendString(b, s); err != nil {
				return nil, err
			}
		}
		if b, err = appendPath(b, r.Path); err != nil {
			return nil, err
		}
		b = pad(b, 4)
		b = binary.LittleEndian.AppendUint32(b, r.JobID)
		if b, err = appendString(b, r.JobType); err != nil {
			return nil, err
		}
		if b, err = appendPath(b, r.JobPath); err != nil {
			return nil, err
		}
	}
	n := len(b) - start
	if n > 1<<26 {
		return nil, fmt.Errorf("encode a(ssssssouso): %d bytes is over the array limit", n)
	}
	binary.LittleEndian.PutUint32(b[lenAt:], uint32(n))
	return b, nil
}

// pad appends zero bytes up to a multiple of align.
func pad(b []byte, align int) []byte {
	for len(b)%align != 0 {
		b = append(b, 0)
	}
	return b
}

// appendString encodes a D-Bus string: valid UTF-8 without NUL, as godbus
// and the specification demand.
func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("encode string %q: not valid UTF-8", s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("encode string %q: holds a NUL byte", s)
	}
	b = pad(b, 4)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	b = append(b, s...)
	return append(b, 0), nil
}

func appendPath(b []byte, p dbus.ObjectPath) ([]byte, error) {
	if !validPath(string(p)) {
		return nil, fmt.Errorf("encode object path %q: not valid", p)
	}
	b = pad(b, 4)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	b = append(b, p...)
	return append(b, 0), nil
}

// validPath is ObjectPath.IsValid without its allocations: "/", or
// "/"-separated non-empty elements of [A-Za-z0-9_].
func validPath(s string) bool {
	if s == "/" {
		return true
	}
	if len(s) < 2 || s[0] != '/' || s[len(s)-1] == '/' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			if s[i-1] == '/' {
				return false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		default:
			return false
		}
	}
	return true
}

// encodeWireBody encodes a message whose body is one wireBody: godbus
// encodes the header (with the signature, and no body), and the body is
// appended by hand with the header's body length set.
func encodeWireBody(msg *dbus.Message, body wireBody) ([]byte, error) {
	head := *msg
	head.Headers = make(map[dbus.HeaderField]dbus.Variant, len(msg.Headers))
	for k, v := range msg.Headers {
		head.Headers[k] = v
	}
	head.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.ParseSignatureMust(body.wireSignature()))
	head.Body = nil
	frame, err := encodeMessage(&head)
	if err != nil {
		return nil, err
	}
	if len(frame)%8 != 0 {
		return nil, fmt.Errorf("encode %s: header of %d bytes is not padded", msg.Type, len(frame))
	}
	headLen := len(frame)
	frame = append(make([]byte, 0, headLen+body.sizeHint()), frame...)
	frame, err = body.appendWire(frame)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", msg.Type, err)
	}
	binary.LittleEndian.PutUint32(frame[4:8], uint32(len(frame)-headLen))
	return frame, nil
}
