package autofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
)

// ProtocolVersion is the autofs protocol Vigil speaks (minproto=maxproto=5).
const ProtocolVersion = 5

// PacketType is autofs_packet_hdr.type.
type PacketType int32

// The packet types of protocol v5 (linux/auto_fs.h). Vigil serves direct
// mounts: it expects only missing-direct and expire-direct.
const (
	TypeMissing         PacketType = 0
	TypeExpire          PacketType = 1
	TypeExpireMulti     PacketType = 2
	TypeMissingIndirect PacketType = 3
	TypeExpireIndirect  PacketType = 4
	TypeMissingDirect   PacketType = 5
	TypeExpireDirect    PacketType = 6
)

func (t PacketType) String() string {
	switch t {
	case TypeMissing:
		return "missing"
	case TypeExpire:
		return "expire"
	case TypeExpireMulti:
		return "expire-multi"
	case TypeMissingIndirect:
		return "missing-indirect"
	case TypeExpireIndirect:
		return "expire-indirect"
	case TypeMissingDirect:
		return "missing-direct"
	case TypeExpireDirect:
		return "expire-direct"
	}
	return fmt.Sprintf("type-%d", int32(t))
}

// Packet is one autofs_v5_packet as the kernel writes it to the pipe.
type Packet struct {
	Version int32
	Type    PacketType
	// Token is the wait-queue token the answer names. HasToken says it was
	// read: a packet too short for it cannot be answered.
	Token    uint64
	HasToken bool
	Dev      uint32
	Ino      uint64
	UID      uint32
	GID      uint32
	PID      uint32
	TGID     uint32
	// Name is the path below the mount point; empty for direct mounts.
	Name string
}

// Errors of ParsePacket. A packet with HasToken set may still be answered
// (with FAIL) after any of them but ErrShortPacket.
var (
	ErrShortPacket = errors.New("autofs packet too short")
	ErrVersion     = errors.New("autofs packet of an unknown protocol version")
	ErrType        = errors.New("autofs packet of an unknown type")
	ErrName        = errors.New("autofs packet with a bad name")
)

// v5Layout gives the field offsets of struct autofs_v5_packet, which
// depend on the size of autofs_wqt_t: 32 bits on x86_64, s390, powerpc,
// sparc and mips, an unsigned long elsewhere (arm64, riscv64...).
type v5Layout struct {
	tokenSize                      int
	dev, ino, uid, gid, pid, tgid  int
	length, name, size, compatSize int
}

const nameMax = 255

func layoutFor(tokenSize int) v5Layout {
	l := v5Layout{tokenSize: tokenSize}
	off := 8 + tokenSize
	l.dev = off
	off += 4
	off = (off + 7) &^ 7 // ino is a __u64
	l.ino = off
	off += 8
	l.uid, l.gid, l.pid, l.tgid, l.length = off, off+4, off+8, off+12, off+16
	l.name = off + 20
	l.compatSize = l.name + nameMax + 1
	l.size = (l.compatSize + 7) &^ 7
	return l
}

// hostLayout is the layout of the machine Vigil runs on.
func hostLayout() v5Layout {
	switch runtime.GOARCH {
	case "amd64", "386", "s390x", "ppc64", "ppc64le", "mips", "mipsle", "mips64", "mips64le":
		return layoutFor(4)
	}
	return layoutFor(8)
}

// ParsePacket decodes one packet read from the pipe. It never trusts the
// kernel's numbers beyond the bytes it was given.
func ParsePacket(b []byte) (Packet, error) {
	return parseWithLayout(b, hostLayout())
}

func parseWithLayout(b []byte, l v5Layout) (Packet, error) {
	var p Packet
	ne := binary.NativeEndian
	if len(b) < 8 {
		return p, fmt.Errorf("%w: %d bytes", ErrShortPacket, len(b))
	}
	p.Version = int32(ne.Uint32(b[0:]))
	p.Type = PacketType(int32(ne.Uint32(b[4:])))
	if len(b) >= 8+l.tokenSize {
		if l.tokenSize == 4 {
			p.Token = uint64(ne.Uint32(b[8:]))
		} else {
			p.Token = ne.Uint64(b[8:])
		}
		p.HasToken = true
	}
	if p.Version != ProtocolVersion {
		return p, fmt.Errorf("%w: version %d (Vigil speaks %d)", ErrVersion, p.Version, ProtocolVersion)
	}
	switch p.Type {
	case TypeMissingDirect, TypeExpireDirect, TypeMissingIndirect, TypeExpireIndirect:
	default:
		return p, fmt.Errorf("%w: %s", ErrType, p.Type)
	}
	if len(b) < l.compatSize {
		return p, fmt.Errorf("%w: %d bytes, a v5 packet has %d", ErrShortPacket, len(b), l.compatSize)
	}
	p.Dev = ne.Uint32(b[l.dev:])
	p.Ino = ne.Uint64(b[l.ino:])
	p.UID = ne.Uint32(b[l.uid:])
	p.GID = ne.Uint32(b[l.gid:])
	p.PID = ne.Uint32(b[l.pid:])
	p.TGID = ne.Uint32(b[l.tgid:])
	n := ne.Uint32(b[l.length:])
	if n > nameMax {
		return p, fmt.Errorf("%w: length %d", ErrName, n)
	}
	name := b[l.name : l.name+int(n)]
	for _, c := range name {
		if c == 0 || c == '/' {
			return p, fmt.Errorf("%w: %q", ErrName, name)
		}
	}
	p.Name = string(name)
	return p, nil
}

// Encode renders p as the kernel would (tests and the fuzzer's seeds).
func (p Packet) Encode() []byte {
	return p.encodeWithLayout(hostLayout())
}

func (p Packet) encodeWithLayout(l v5Layout) []byte {
	b := make([]byte, l.size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(p.Version))
	ne.PutUint32(b[4:], uint32(p.Type))
	if l.tokenSize == 4 {
		ne.PutUint32(b[8:], uint32(p.Token))
	} else {
		ne.PutUint64(b[8:], p.Token)
	}
	ne.PutUint32(b[l.dev:], p.Dev)
	ne.PutUint64(b[l.ino:], p.Ino)
	ne.PutUint32(b[l.uid:], p.UID)
	ne.PutUint32(b[l.gid:], p.GID)
	ne.PutUint32(b[l.pid:], p.PID)
	ne.PutUint32(b[l.tgid:], p.TGID)
	name := p.Name
	if len(name) > nameMax {
		name = name[:nameMax]
	}
	ne.PutUint32(b[l.length:], uint32(len(name)))
	copy(b[l.name:], name)
	return b
}
