// Package parttable reads a disk's partition table (GPT, or MBR with its
// extended-partition chain) as libblkid does for udev, so that Vigil can
// make the /dev/disk/by-partuuid and by-partlabel links of partitions and
// resolve fstab's PARTUUID= and PARTLABEL= sources.
//
// It owns only the parsing of the table (and WriteGPT, which makes GPT
// test disks and images); where the links go is devnode's business. The
// numbers it gives partitions are the kernel's (PARTN in the uevent): a
// GPT entry's slot plus one; MBR primaries 1-4 by slot, logicals from 5 in
// the order of their chain.
//
// Offsets count in the disk's logical sectors (512 or 4096 bytes), which
// the kernel publishes in sysfs (queue/logical_block_size): ReadSectors
// takes that size, as the kernel and libblkid do; Read guesses. What it
// reports (PARTUUID, PARTLABEL, numbers, types) is checked against
// sfdisk, sgdisk, partx and blkid -p in realtools_test.go.
package parttable

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf16"
)

// ErrNoTable is returned when the disk holds no partition table Vigil
// knows.
var ErrNoTable = errors.New("no partition table")

// Table is a disk's partition table.
type Table struct {
	// Type is "gpt" or "dos", as blkid's ID_PART_TABLE_TYPE.
	Type string
	// UUID is the GPT disk GUID, or the MBR disk signature ("1a2b3c4d").
	UUID string
	// SectorSize is the logical sector size the table was found with.
	SectorSize int
	// Partitions are in the order of their numbers.
	Partitions []Partition
}

// Partition is one entry of a table.
type Partition struct {
	// Number is the kernel's partition number (PARTN).
	Number int
	// Start and Sectors are in logical sectors of the table.
	Start, Sectors uint64
	// Type is the GPT type GUID, or the MBR type byte as "0x83".
	Type string
	// UUID is the PARTUUID: the GPT entry's unique GUID, or for MBR the
	// disk signature and number, "1a2b3c4d-01".
	UUID string
	// Name is the GPT partition name (the PARTLABEL); MBR has none.
	Name string
}

// Partition gives the entry numbered n.
func (t Table) Partition(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// Limits that keep a hostile table from making Read allocate or loop
// without end.
const (
	maxGPTEntries   = 4096
	maxGPTEntrySize = 4096
	// maxGPTArray bounds the entry array read (the usual 128 entries of
	// 128 bytes are 16 KiB).
	maxGPTArray = 1 << 20
	maxLogicals = 256
	// maxSectorSize is the largest logical sector size accepted (the
	// kernel's block layer allows up to 64 KiB with large block sizes).
	maxSectorSize = 64 << 10
)

// Read reads the partition table of the disk r without knowing its
// logical sector size: a GPT is looked for with 512- and then 4096-byte
// sectors, an MBR with 512-byte ones. size is the disk's size in bytes (0
// when unknown: the backup GPT header at the end of the disk is then not
// tried). A disk without a table gives ErrNoTable; a failing read gives
// that error. Use ReadSectors when the sector size is known.
func Read(r io.ReaderAt, size int64) (Table, error) {
	return ReadSectors(r, size, 0)
}

// ReadSectors reads the partition table of the disk r whose logical
// sector size is sectorSize bytes (LogicalSectorSize reads the kernel's):
// the table is looked for with that size only, as the kernel and libblkid
// do. It matters for MBR, whose entries and chain of extended boot
// records count in logical sectors: on a 4096-byte-sector disk, reading
// them as 512-byte sectors finds the primaries' numbers but loses every
// logical partition. sectorSize 0 guesses as Read does.
func ReadSectors(r io.ReaderAt, size int64, sectorSize int) (Table, error) {
	sizes := []int{512, 4096}
	mbrSize := 512
	if sectorSize != 0 {
		if sectorSize < 512 || sectorSize > maxSectorSize || sectorSize&(sectorSize-1) != 0 {
			return Table{}, fmt.Errorf("sector size %d: want a power of two from 512 to %d", sectorSize, maxSectorSize)
		}
		sizes, mbrSize = []int{sectorSize}, sectorSize
	}
	mbr, err := readAt(r, 0, 512)
	if err != nil {
		return Table{}, err
	}
	if mbr == nil || mbr[510] != 0x55 || mbr[511] != 0xAA {
		return Table{}, ErrNoTable
	}
	// The kernel and libblkid look for a GPT only behind a protective
	// (or hybrid) MBR: a disk relabelled as MBR by a tool that left the
	// old GPT headers in place is an MBR disk.
	if hasProtectiveEntry(mbr) {
		for _, ss := range sizes {
			t, ok, err := readGPT(r, size, ss)
			if err != nil {
				return Table{}, err
			}
			if ok {
				return t, nil
			}
		}
		return Table{}, ErrNoTable // a protective MBR whose GPT is broken
	}
	t, ok, err := readMBR(r, mbr, mbrSize)
	if err != nil {
		return Table{}, err
	}
	if ok {
		return t, nil
	}
	return Table{}, ErrNoTable
}

// LogicalSectorSize gives the logical sector size of the disk whose sysfs
// directory is diskDir (/sys/block/vda, or the disk's devices/... path):
// its queue/logical_block_size, the unit of its partition table.
func LogicalSectorSize(diskDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(diskDir, "queue", "logical_block_size"))
	if err != nil {
		return 0, fmt.Errorf("logical sector size: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 512 || n > maxSectorSize || n&(n-1) != 0 {
		return 0, fmt.Errorf("logical sector size: %s/queue/logical_block_size holds %q", diskDir, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// hasProtectiveEntry reports whether an MBR holds a GPT protective entry
// (type 0xEE), as libblkid's is_pmbr_valid checks.
func hasProtectiveEntry(mbr []byte) bool {
	for _, e := range mbrEntries(mbr) {
		if e.typ == 0xee {
			return true
		}
	}
	return false
}

// readAt reads n bytes at off; a disk too small gives nil and no error.
func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	if off < 0 {
		return nil, nil
	}
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

// FormatGUID prints a GPT GUID (mixed-endian on disk) as blkid does, in
// lower case; all zeros give "".
func FormatGUID(b []byte) string {
	if len(b) != 16 || bytes.Equal(b, make([]byte, 16)) {
		return ""
	}
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:4]), le.Uint16(b[4:6]), le.Uint16(b[6:8]), b[8:10], b[10:16])
}

// ParseGUID is FormatGUID's inverse (either case).
func ParseGUID(s string) ([16]byte, error) {
	var g [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	le, be := binary.LittleEndian, binary.BigEndian
	le.PutUint32(g[0:], be.Uint32(raw[0:]))
	le.PutUint16(g[4:], be.Uint16(raw[4:]))
	le.PutUint16(g[6:], be.Uint16(raw[6:]))
	copy(g[8:], raw[8:])
	return g, nil
}

// gptHeader is the part of the header Read uses.
type gptHeader struct {
	myLBA, altLBA, firstUsable, lastUsable uint64
	diskGUID                               []byte
	entriesLBA                             uint64
	entries, entrySize                     uint32
	entriesCRC                             uint32
}

func parseGPTHeader(b []byte, sectorSize int) (gptHeader, bool) {
	le := binary.LittleEndian
	if string(b[0:8]) != "EFI PART" {
		return gptHeader{}, false
	}
	hsize := le.Uint32(b[12:])
	if hsize < 92 || int(hsize) > sectorSize {
		return gptHeader{}, false
	}
	h := make([]byte, hsize)
	copy(h, b[:hsize])
	want := le.Uint32(h[16:])
	le.PutUint32(h[16:], 0)
	if crc32.ChecksumIEEE(h) != want {
		return gptHeader{}, false
	}
	g := gptHeader{
		myLBA: le.Uint64(b[24:]), altLBA: le.Uint64(b[32:]),
		firstUsable: le.Uint64(b[40:]), lastUsable: le.Uint64(b[48:]),
		diskGUID: b[56:72], entriesLBA: le.Uint64(b[72:]),
		entries: le.Uint32(b[80:]), entrySize: le.Uint32(b[84:]), entriesCRC: le.Uint32(b[88:]),
	}
	if g.entrySize < 128 || g.entrySize > maxGPTEntrySize || g.entrySize%8 != 0 || g.entries == 0 || g.entries > maxGPTEntries {
		return gptHeader{}, false
	}
	return g, true
}

func readGPT(r io.ReaderAt, size int64, sectorSize int) (Table, bool, error) {
	lbas := []int64{1}
	if size > 0 && size/int64(sectorSize) > 2 {
		lbas = append(lbas, size/int64(sectorSize)-1)
	}
	for _, lba := range lbas {
		b, err := readAt(r, lba*int64(sectorSize), sectorSize)
		if err != nil {
			return Table{}, false, err
		}
		if b == nil {
			continue
		}
		h, ok := parseGPTHeader(b, sectorSize)
		if !ok || h.myLBA != uint64(lba) {
			continue
		}
		arrayBytes := int64(h.entries) * int64(h.entrySize)
		if h.entriesLBA > uint64(1<<40) || arrayBytes > maxGPTArray ||
			size > 0 && int64(h.entriesLBA)*int64(sectorSize)+arrayBytes > size {
			continue
		}
		raw, err := readAt(r, int64(h.entriesLBA)*int64(sectorSize), int(h.entries)*int(h.entrySize))
		if err != nil {
			return Table{}, false, err
		}
		if raw == nil || crc32.ChecksumIEEE(raw) != h.entriesCRC {
			continue
		}
		t := Table{Type: "gpt", UUID: FormatGUID(h.diskGUID), SectorSize: sectorSize}
		le := binary.LittleEndian
		for i := 0; i < int(h.entries); i++ {
			e := raw[i*int(h.entrySize) : (i+1)*int(h.entrySize)]
			typ := FormatGUID(e[0:16])
			if typ == "" {
				continue
			}
			first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
			// The kernel's is_pte_valid: inside the usable area.
			if last < first || first < h.firstUsable || last > h.lastUsable {
				continue
			}
			t.Partitions = append(t.Partitions, Partition{Number: i + 1, Start: first, Sectors: last - first + 1,
				Type: typ, UUID: FormatGUID(e[16:32]), Name: decodeName(e[56:128])})
		}
		return t, true, nil
	}
	return Table{}, false, nil
}

// decodeName decodes a GPT name: UTF-16LE up to the first NUL, without
// trailing white space (libblkid trims it, so udev's PARTLABEL has none).
func decodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.TrimRight(string(utf16.Decode(u)), " \t\n\v\f\r")
}

// isExtended reports whether an MBR type byte is an extended partition.
func isExtended(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

type mbrEntry struct {
	boot, typ     byte
	start, length uint32
}

func mbrEntries(sector []byte) [4]mbrEntry {
	var es [4]mbrEntry
	le := binary.LittleEndian
	for i := range es {
		e := sector[446+16*i:]
		es[i] = mbrEntry{boot: e[0], typ: e[4], start: le.Uint32(e[8:]), length: le.Uint32(e[12:])}
	}
	return es
}

// readMBR reads the MBR in b (the first 512 bytes of the disk, with its
// 0x55AA signature) and its chain of logical partitions, all counted in
// sectorSize-byte sectors.
func readMBR(r io.ReaderAt, b []byte, sectorSize int) (Table, bool, error) {
	es := mbrEntries(b)
	used := false
	for _, e := range es {
		// libblkid's test: a boot flag other than 0 or 0x80 means this
		// is no partition table (a FAT boot sector, say).
		if e.boot != 0 && e.boot != 0x80 {
			return Table{}, false, nil
		}
		if e.length != 0 {
			used = true
		}
	}
	if !used {
		return Table{}, false, nil
	}
	// A FAT boot sector has a jump instruction and a sane BPB; a table
	// with both is the file system's (mkfs.vfat on a whole disk).
	if (b[0] == 0xEB || b[0] == 0xE9) && bytes.Contains(b[0x36:0x5A], []byte("FAT")) {
		return Table{}, false, nil
	}
	// A zero disk signature gives no PTUUID and no PARTUUIDs, as with
	// libblkid (and so udev makes no by-partuuid link).
	sig := binary.LittleEndian.Uint32(b[440:])
	t := Table{Type: "dos", SectorSize: sectorSize}
	if sig != 0 {
		t.UUID = fmt.Sprintf("%08x", sig)
	}
	part := func(n int, typ byte, start, length uint64) {
		p := Partition{Number: n, Start: start, Sectors: length, Type: fmt.Sprintf("0x%x", typ)}
		if sig != 0 {
			p.UUID = fmt.Sprintf("%08x-%02x", sig, n)
		}
		t.Partitions = append(t.Partitions, p)
	}
	// Primaries are numbered by slot; an entry counts when its size is
	// not zero, whatever its type (the kernel's and libblkid's rule).
	for i, e := range es {
		if e.length != 0 {
			part(i+1, e.typ, uint64(e.start), uint64(e.length))
		}
	}
	// Logicals are numbered from 5 on, through every extended primary in
	// slot order.
	next := 5
	for _, e := range es {
		if e.length == 0 || !isExtended(e.typ) || e.start == 0 {
			continue
		}
		var err error
		if next, err = readLogicals(r, uint64(e.start), uint64(e.length), sectorSize, next, part); err != nil {
			return Table{}, false, err
		}
	}
	return t, true, nil
}

// readLogicals walks the chain of extended boot records of the extended
// partition at base (size sectors long); each record describes its
// logical partitions (relative to the record) and the next record
// (relative to base). It numbers the logicals from n on and returns the
// next free number. It follows libblkid's parse_dos_extended: entries 3
// and 4 count only when they lie inside the extended partition, and the
// link is the first extended entry with a size and a start.
func readLogicals(r io.ReaderAt, base, size uint64, sectorSize, n int, part func(int, byte, uint64, uint64)) (int, error) {
	seen := map[uint64]bool{}
	for ebr, ebrSize := base, size; len(seen) < maxLogicals; {
		if seen[ebr] || ebr > 1<<40 {
			return n, nil
		}
		seen[ebr] = true
		b, err := readAt(r, int64(ebr)*int64(sectorSize), 512)
		if b == nil {
			return n, err
		}
		if b[510] != 0x55 || b[511] != 0xAA {
			return n, nil
		}
		es := mbrEntries(b)
		for i, e := range es {
			if e.length == 0 || isExtended(e.typ) {
				continue
			}
			start, length := ebr+uint64(e.start), uint64(e.length)
			if i >= 2 && (uint64(e.start)+length > ebrSize || start < base || start+length > base+size) {
				continue // garbage in the 3rd and 4th entries
			}
			part(n, e.typ, start, length)
			n++
		}
		link := -1
		for i, e := range es {
			if e.length != 0 && isExtended(e.typ) && e.start != 0 {
				link = i
				break
			}
		}
		if link < 0 {
			return n, nil
		}
		ebr, ebrSize = base+uint64(es[link].start), uint64(es[link].length)
	}
	return n, nil
}
