package inotify

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Record is one struct inotify_event as the kernel writes it.
type Record struct {
	WD     int32
	Mask   uint32
	Cookie uint32
	// Name is the entry's name inside a watched directory, "" for an event
	// on the watched object itself.
	Name string
}

// headerSize is sizeof(struct inotify_event) without the name.
const headerSize = unix.SizeofInotifyEvent

// maxNameLen bounds the padded name of one record: NAME_MAX plus its NUL,
// rounded up by the kernel to the record alignment. Anything longer did not
// come from the kernel.
const maxNameLen = 4096

// ParseRecords decodes a buffer read from an inotify descriptor. It returns
// the records it could decode and an error for a malformed tail (a header
// cut short, or a name length that runs past the buffer or is absurd); the
// kernel never writes a partial record, so a tail means corrupt input.
func ParseRecords(buf []byte) ([]Record, error) {
	var out []Record
	for off := 0; off < len(buf); {
		if len(buf)-off < headerSize {
			return out, fmt.Errorf("inotify record at %d: %d bytes left, header needs %d", off, len(buf)-off, headerSize)
		}
		h := buf[off : off+headerSize]
		r := Record{
			WD:     int32(binary.NativeEndian.Uint32(h[0:4])),
			Mask:   binary.NativeEndian.Uint32(h[4:8]),
			Cookie: binary.NativeEndian.Uint32(h[8:12]),
		}
		nameLen := int(binary.NativeEndian.Uint32(h[12:16]))
		if nameLen < 0 || nameLen > maxNameLen {
			return out, fmt.Errorf("inotify record at %d: name length %d out of range", off, nameLen)
		}
		start := off + headerSize
		if nameLen > len(buf)-start {
			return out, fmt.Errorf("inotify record at %d: name of %d bytes runs past the buffer (%d left)", off, nameLen, len(buf)-start)
		}
		name := buf[start : start+nameLen]
		if i := indexNUL(name); i >= 0 {
			name = name[:i]
		}
		r.Name = string(name)
		out = append(out, r)
		off = start + nameLen
	}
	return out, nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// maskNames are the event bits in the kernel's order, for MaskString.
var maskNames = [...]struct {
	bit  uint32
	name string
}{
	{unix.IN_ACCESS, "access"},
	{unix.IN_MODIFY, "modify"},
	{unix.IN_ATTRIB, "attrib"},
	{unix.IN_CLOSE_WRITE, "close_write"},
	{unix.IN_CLOSE_NOWRITE, "close_nowrite"},
	{unix.IN_OPEN, "open"},
	{unix.IN_MOVED_FROM, "moved_from"},
	{unix.IN_MOVED_TO, "moved_to"},
	{unix.IN_CREATE, "create"},
	{unix.IN_DELETE, "delete"},
	{unix.IN_DELETE_SELF, "delete_self"},
	{unix.IN_MOVE_SELF, "move_self"},
	{unix.IN_UNMOUNT, "unmount"},
	{unix.IN_Q_OVERFLOW, "overflow"},
	{unix.IN_IGNORED, "ignored"},
	{unix.IN_ISDIR, "isdir"},
}

// MaskString renders event bits as "create|isdir"; unknown bits in hex.
func MaskString(mask uint32) string {
	var parts []string
	for _, n := range maskNames {
		if mask&n.bit != 0 {
			parts = append(parts, n.name)
			mask &^= n.bit
		}
	}
	if mask != 0 {
		parts = append(parts, fmt.Sprintf("%#x", mask))
	}
	return strings.Join(parts, "|")
}
