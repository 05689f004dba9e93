// Package blkid identifies the file system on a block device from its
// superblock, as libblkid does for udev: its type, UUID and label, which
// the device node code turns into /dev/disk/by-uuid and by-label links.
//
// It knows ext2, ext3, ext4 (and ext journals, "jbd"), vfat, xfs, btrfs and
// Linux swap. Unlike libblkid it does not look for competing signatures:
// the first match wins, checked in the order xfs, ext, btrfs, swap, vfat
// (vfat's boot sector is the weakest signature, so it comes last). A vfat
// label is read from the boot sector, not from the root directory's
// volume label entry (mkfs.vfat and fatlabel write both).
package blkid

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUnknown is returned when no known file system signature is found.
var ErrUnknown = errors.New("no known file system")

// Identity is what Probe found.
type Identity struct {
	Type  string // "ext4", "vfat", "xfs", "btrfs", "swap", ...
	UUID  string // as blkid prints it: "0b1c...-..." or "ABCD-1234" for vfat; "" when none
	Label string // raw bytes of the label, trailing NULs and padding removed
}

// Probe reads the superblock of the file system r holds and returns its
// type, UUID and label. It reads at most a few KiB, at fixed offsets
// within the first 68 KiB. An empty or unrecognised device gives
// ErrUnknown; a failing read gives that error.
func Probe(r io.ReaderAt) (fstype, uuid, label string, err error) {
	id, err := ProbeIdentity(r)
	return id.Type, id.UUID, id.Label, err
}

// ProbeIdentity is Probe returning an Identity.
func ProbeIdentity(r io.ReaderAt) (Identity, error) {
	for _, probe := range []func(io.ReaderAt) (Identity, bool, error){probeXFS, probeExt, probeBtrfs, probeSwap, probeVFAT} {
		id, ok, err := probe(r)
		if err != nil {
			return Identity{}, err
		}
		if ok {
			return id, nil
		}
	}
	return Identity{}, ErrUnknown
}

// readAt reads n bytes at off; a device too small for them gives nil and
// no error, since that only means this file system is not there.
func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := r.ReadAt(buf, off)
	if m == n {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil
	}
	return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
}

// formatUUID prints 16 bytes as 8-4-4-4-12 lower-case hex; all zeros
// mean "no UUID".
func formatUUID(b []byte) string {
	if len(b) != 16 || bytes.Equal(b, make([]byte, 16)) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// cString is a fixed-size field up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ext2/3/4: the superblock is at 1024.
func probeExt(r io.ReaderAt) (Identity, bool, error) {
	sb, err := readAt(r, 1024, 256)
	if sb == nil {
		return Identity{}, false, err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xEF53 {
		return Identity{}, false, nil
	}
	compat, incompat, roCompat := le.Uint32(sb[0x5C:]), le.Uint32(sb[0x60:]), le.Uint32(sb[0x64:])
	const (
		compatHasJournal  = 0x0004
		incompatJournalDe = 0x0008
		// What ext2 and ext3 understand (libblkid's EXT3_FEATURE_*_SUPP):
		// anything beyond makes it ext4.
		ext3IncompatSupp = 0x0002 | 0x0004 | 0x0010 // filetype, recover, meta_bg
		ext3RoCompatSupp = 0x0001 | 0x0002 | 0x0004 // sparse_super, large_file, btree_dir
	)
	id := Identity{UUID: formatUUID(sb[0x68:0x78]), Label: cString(sb[0x78:0x88])}
	switch {
	case incompat&incompatJournalDe != 0:
		id.Type = "jbd"
	case incompat&^ext3IncompatSupp != 0 || roCompat&^ext3RoCompatSupp != 0:
		id.Type = "ext4"
	case compat&compatHasJournal != 0:
		id.Type = "ext3"
	default:
		id.Type = "ext2"
	}
	return id, true, nil
}

// xfs: the superblock is at 0, big-endian.
func probeXFS(r io.ReaderAt) (Identity, bool, error) {
	sb, err := readAt(r, 0, 120)
	if sb == nil {
		return Identity{}, false, err
	}
	if string(sb[0:4]) != "XFSB" {
		return Identity{}, false, nil
	}
	blockSize := binary.BigEndian.Uint32(sb[4:])
	if blockSize < 512 || blockSize > 65536 || blockSize&(blockSize-1) != 0 {
		return Identity{}, false, nil
	}
	return Identity{Type: "xfs", UUID: formatUUID(sb[32:48]), Label: cString(sb[108:120])}, true, nil
}

// btrfs: the primary superblock is at 64 KiB.
func probeBtrfs(r io.ReaderAt) (Identity, bool, error) {
	sb, err := readAt(r, 0x10000, 0x12B+256)
	if sb == nil {
		return Identity{}, false, err
	}
	if string(sb[0x40:0x48]) != "_BHRfS_M" {
		return Identity{}, false, nil
	}
	return Identity{Type: "btrfs", UUID: formatUUID(sb[0x20:0x30]), Label: cString(sb[0x12B : 0x12B+256])}, true, nil
}

// swap: "SWAPSPACE2" ends the first page, whatever the page size was on
// the machine that made it; the version-1 header follows the 1 KiB of
// boot bits.
func probeSwap(r io.ReaderAt) (Identity, bool, error) {
	for _, page := range []int64{4096, 8192, 16384, 32768, 65536} {
		magic, err := readAt(r, page-10, 10)
		if err != nil {
			return Identity{}, false, err
		}
		if magic == nil {
			break
		}
		if string(magic) != "SWAPSPACE2" {
			continue
		}
		hdr, err := readAt(r, 1024, 44)
		if hdr == nil {
			return Identity{}, false, err
		}
		return Identity{Type: "swap", UUID: formatUUID(hdr[12:28]), Label: cString(hdr[28:44])}, true, nil
	}
	return Identity{}, false, nil
}

// vfat: the boot sector's BIOS parameter block must look sane, since the
// only magic is the 0x55AA that every boot sector has.
func probeVFAT(r io.ReaderAt) (Identity, bool, error) {
	bs, err := readAt(r, 0, 512)
	if bs == nil {
		return Identity{}, false, err
	}
	le := binary.LittleEndian
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return Identity{}, false, nil
	}
	if oem := string(bs[3:11]); oem == "NTFS    " || oem == "EXFAT   " {
		return Identity{}, false, nil
	}
	sectorSize := le.Uint16(bs[0x0B:])
	clusterSectors := bs[0x0D]
	reserved := le.Uint16(bs[0x0E:])
	fats := bs[0x10]
	media := bs[0x15]
	if sectorSize < 512 || sectorSize > 4096 || sectorSize&(sectorSize-1) != 0 ||
		clusterSectors == 0 || clusterSectors&(clusterSectors-1) != 0 ||
		reserved == 0 || fats == 0 || fats > 4 || media != 0xF0 && media < 0xF8 {
		return Identity{}, false, nil
	}
	// FAT32 has no 16-bit FAT size and keeps its extended BPB further on.
	sigOff, serialOff, labelOff := 0x26, 0x27, 0x2B
	if le.Uint16(bs[0x16:]) == 0 {
		if le.Uint32(bs[0x24:]) == 0 {
			return Identity{}, false, nil
		}
		sigOff, serialOff, labelOff = 0x42, 0x43, 0x47
	}
	id := Identity{Type: "vfat"}
	if sig := bs[sigOff]; sig == 0x29 || sig == 0x28 {
		serial := le.Uint32(bs[serialOff:])
		id.UUID = fmt.Sprintf("%04X-%04X", serial>>16, serial&0xFFFF)
		if sig == 0x29 {
			label := strings.TrimRight(cString(bs[labelOff:labelOff+11]), " ")
			if label != "NO NAME" {
				id.Label = label
			}
		}
	}
	return id, true, nil
}
