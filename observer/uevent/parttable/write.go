package parttable

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// GPTEntry is a partition for WriteGPT. Start and Sectors are in 512-byte
// sectors; Type and UUID are GUIDs as FormatGUID prints them.
type GPTEntry struct {
	Type, UUID, Name string
	Start, Sectors   uint64
}

// LinuxFilesystemGUID is the GPT type of a Linux file system partition.
const LinuxFilesystemGUID = "0fc63daf-8483-4772-8e79-3d69d8477de4"

// WriteGPT writes a protective MBR and the primary and backup GPT (128
// entries, 512-byte sectors) for a disk of size bytes into w: what sfdisk
// or sgdisk would write, for test disks and images made without them.
// Partitions must lie between sector 2048 and 34 sectors before the end.
func WriteGPT(w io.WriterAt, size int64, diskGUID string, parts []GPTEntry) error {
	const ss, nEntries, entrySize = 512, 128, 128
	sectors := uint64(size / ss)
	if sectors < 2048+34 {
		return fmt.Errorf("write GPT: a disk of %d bytes is too small", size)
	}
	if len(parts) > nEntries {
		return fmt.Errorf("write GPT: %d partitions, at most %d", len(parts), nEntries)
	}
	lastLBA := sectors - 1
	firstUsable, lastUsable := uint64(34), lastLBA-33
	le := binary.LittleEndian

	entries := make([]byte, nEntries*entrySize)
	for i, p := range parts {
		if p.Sectors == 0 || p.Start < firstUsable || p.Start+p.Sectors-1 > lastUsable {
			return fmt.Errorf("write GPT: partition %d (%d+%d) outside the usable sectors %d-%d", i+1, p.Start, p.Sectors, firstUsable, lastUsable)
		}
		e := entries[i*entrySize:]
		typ, err := ParseGUID(p.Type)
		if err != nil {
			return fmt.Errorf("write GPT: partition %d type: %w", i+1, err)
		}
		id, err := ParseGUID(p.UUID)
		if err != nil {
			return fmt.Errorf("write GPT: partition %d: %w", i+1, err)
		}
		copy(e[0:], typ[:])
		copy(e[16:], id[:])
		le.PutUint64(e[32:], p.Start)
		le.PutUint64(e[40:], p.Start+p.Sectors-1)
		name := utf16.Encode([]rune(p.Name))
		if len(name) > 36 {
			return fmt.Errorf("write GPT: partition %d: name %q longer than 36 UTF-16 units", i+1, p.Name)
		}
		for j, c := range name {
			le.PutUint16(e[56+2*j:], c)
		}
	}
	disk, err := ParseGUID(diskGUID)
	if err != nil {
		return fmt.Errorf("write GPT: disk: %w", err)
	}
	header := func(my, alt, entriesLBA uint64) []byte {
		h := make([]byte, ss)
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alt)
		le.PutUint64(h[40:], firstUsable)
		le.PutUint64(h[48:], lastUsable)
		copy(h[56:], disk[:])
		le.PutUint64(h[72:], entriesLBA)
		le.PutUint32(h[80:], nEntries)
		le.PutUint32(h[84:], entrySize)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	mbr := make([]byte, ss)
	pe := mbr[446:]
	pe[4] = 0xee
	le.PutUint32(pe[8:], 1)
	le.PutUint32(pe[12:], uint32(min(lastLBA, 0xffffffff)))
	mbr[510], mbr[511] = 0x55, 0xaa
	for _, wr := range []struct {
		lba  uint64
		data []byte
	}{
		{0, mbr}, {1, header(1, lastLBA, 2)}, {2, entries},
		{lastLBA - 32, entries}, {lastLBA, header(lastLBA, 1, lastLBA-32)},
	} {
		if _, err := w.WriteAt(wr.data, int64(wr.lba)*ss); err != nil {
			return fmt.Errorf("write GPT: %w", err)
		}
	}
	return nil
}
