package fanotify

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// metadataLen is sizeof(struct fanotify_event_metadata): event_len u32,
// vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32.
const metadataLen = 24

// responseLen is sizeof(struct fanotify_response): fd s32, response u32.
const responseLen = 8

// record is one event as the kernel reported it.
type record struct {
	Mask uint64
	// FD is the accessed file opened for us (close it after answering),
	// or unix.FAN_NOFD for events without a file (queue overflow).
	FD  int32
	PID int32
}

// parseRecords appends the records in one read(2) of the fanotify group to
// out. Records are walked by their own event_len, so information records
// a later kernel appends are skipped. A record that is too short, runs past
// the buffer or has another metadata version ends the walk with an error:
// what follows cannot be trusted. The records before it are returned so
// their accessors are still answered.
func parseRecords(buf []byte, out []record) ([]record, error) {
	for len(buf) > 0 {
		if len(buf) < metadataLen {
			return out, fmt.Errorf("fanotify: %d trailing bytes, shorter than an event (%d)", len(buf), metadataLen)
		}
		eventLen := binary.NativeEndian.Uint32(buf[0:4])
		vers := buf[4]
		metaLen := binary.NativeEndian.Uint16(buf[6:8])
		if vers != unix.FANOTIFY_METADATA_VERSION {
			return out, fmt.Errorf("fanotify: event metadata version %d, expected %d", vers, unix.FANOTIFY_METADATA_VERSION)
		}
		if metaLen < metadataLen || eventLen < uint32(metaLen) || uint64(eventLen) > uint64(len(buf)) {
			return out, fmt.Errorf("fanotify: event of length %d (metadata %d) in %d remaining bytes", eventLen, metaLen, len(buf))
		}
		out = append(out, record{
			Mask: binary.NativeEndian.Uint64(buf[8:16]),
			FD:   int32(binary.NativeEndian.Uint32(buf[16:20])),
			PID:  int32(binary.NativeEndian.Uint32(buf[20:24])),
		})
		buf = buf[eventLen:]
	}
	return out, nil
}

// encodeResponse fills a struct fanotify_response.
func encodeResponse(b *[responseLen]byte, fd int32, allow bool) {
	resp := uint32(unix.FAN_DENY)
	if allow {
		resp = unix.FAN_ALLOW
	}
	binary.NativeEndian.PutUint32(b[0:4], uint32(fd))
	binary.NativeEndian.PutUint32(b[4:8], resp)
}

// kindOf names the permission event in mask, or "" for none.
func kindOf(mask uint64) (string, Mask) {
	switch {
	case mask&unix.FAN_OPEN_EXEC_PERM != 0:
		return "exec", Exec
	case mask&unix.FAN_OPEN_PERM != 0:
		return "open", Open
	case mask&unix.FAN_ACCESS_PERM != 0:
		return "access", Access
	}
	return "", 0
}

// kernelMask turns a Mask into FAN_*_PERM bits.
func (m Mask) kernelMask() uint64 {
	var k uint64
	if m&Open != 0 {
		k |= unix.FAN_OPEN_PERM
	}
	if m&Access != 0 {
		k |= unix.FAN_ACCESS_PERM
	}
	if m&Exec != 0 {
		k |= unix.FAN_OPEN_EXEC_PERM
	}
	return k
}

// String lists the accesses, e.g. "open|exec".
func (m Mask) String() string {
	s := ""
	for _, p := range []struct {
		bit  Mask
		name string
	}{{Open, "open"}, {Access, "access"}, {Exec, "exec"}} {
		if m&p.bit != 0 {
			if s != "" {
				s += "|"
			}
			s += p.name
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// ParseMask reads access names ("open", "access", "exec") into a Mask.
func ParseMask(names []string) (Mask, error) {
	var m Mask
	for _, n := range names {
		switch n {
		case "open":
			m |= Open
		case "access":
			m |= Access
		case "exec":
			m |= Exec
		default:
			return 0, fmt.Errorf("access %q: expected open, access or exec", n)
		}
	}
	return m, nil
}
