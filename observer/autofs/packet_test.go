package autofs

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestParsePacketRoundTrip(t *testing.T) {
	for _, l := range []v5Layout{layoutFor(4), layoutFor(8)} {
		in := Packet{Version: 5, Type: TypeMissingDirect, Token: 42, HasToken: true, Dev: 7, Ino: 1 << 40,
			UID: 1000, GID: 100, PID: 4321, TGID: 4320, Name: "sub"}
		b := in.encodeWithLayout(l)
		if len(b) != l.size {
			t.Fatalf("token size %d: encoded %d bytes, want %d", l.tokenSize, len(b), l.size)
		}
		out, err := parseWithLayout(b, l)
		if err != nil {
			t.Fatalf("token size %d: %v", l.tokenSize, err)
		}
		if out != in {
			t.Errorf("token size %d: got %+v, want %+v", l.tokenSize, out, in)
		}
		// The compat (32-bit daemon) size, without the tail padding.
		if _, err := parseWithLayout(b[:l.compatSize], l); err != nil {
			t.Errorf("token size %d: compat size: %v", l.tokenSize, err)
		}
	}
	// The amd64 layout is the kernel's: 304 bytes, the token at 8, the
	// name at 44.
	if l := layoutFor(4); l.size != 304 || l.name != 44 || l.ino != 16 {
		t.Errorf("x86_64 layout: %+v", l)
	}
}

func TestParsePacketErrors(t *testing.T) {
	good := Packet{Version: 5, Type: TypeExpireDirect, Token: 9}.Encode()
	cases := []struct {
		name      string
		b         []byte
		want      error
		withToken bool
	}{
		{"empty", nil, ErrShortPacket, false},
		{"header only", good[:8], ErrShortPacket, false},
		{"truncated body", good[:40], ErrShortPacket, true},
		{"version 4", Packet{Version: 4, Type: TypeMissingDirect, Token: 9}.Encode(), ErrVersion, true},
		{"version 6", Packet{Version: 6, Type: TypeMissingDirect, Token: 9}.Encode(), ErrVersion, true},
		{"unknown type", Packet{Version: 5, Type: 77, Token: 9}.Encode(), ErrType, true},
		{"v3 missing", Packet{Version: 5, Type: TypeMissing, Token: 9}.Encode(), ErrType, true},
		{"slash in name", Packet{Version: 5, Type: TypeMissingDirect, Token: 9, Name: "a/b"}.Encode(), ErrName, true},
	}
	long := Packet{Version: 5, Type: TypeMissingDirect, Token: 9}.Encode()
	hostLayout().putLen(long, 300)
	cases = append(cases, struct {
		name      string
		b         []byte
		want      error
		withToken bool
	}{"name too long", long, ErrName, true})
	for _, c := range cases {
		p, err := ParsePacket(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if p.HasToken != c.withToken || (c.withToken && p.Token != 9) {
			t.Errorf("%s: token %d (has %v), want has %v", c.name, p.Token, p.HasToken, c.withToken)
		}
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add(Packet{Version: 5, Type: TypeMissingDirect, Token: 1}.Encode())
	f.Add(Packet{Version: 5, Type: TypeExpireDirect, Token: 2, Name: "x"}.Encode())
	f.Add(Packet{Version: 4, Type: TypeMissing, Token: 3}.Encode())
	f.Add([]byte{5, 0, 0, 0, 5, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range []v5Layout{layoutFor(4), layoutFor(8)} {
			p, err := parseWithLayout(b, l)
			if len(b) >= 8+l.tokenSize && !p.HasToken {
				t.Fatalf("%d bytes but no token", len(b))
			}
			if err != nil {
				continue
			}
			if len(p.Name) > nameMax {
				t.Fatalf("name of %d bytes accepted", len(p.Name))
			}
			// What parsed re-encodes to a packet that parses the same.
			again, err := parseWithLayout(p.encodeWithLayout(l), l)
			if err != nil || again != p {
				t.Fatalf("re-encoded %+v parsed as %+v, %v", p, again, err)
			}
		}
	})
}

// putLen sets the name length field.
func (l v5Layout) putLen(b []byte, n uint32) { binary.NativeEndian.PutUint32(b[l.length:], n) }
