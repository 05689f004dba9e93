package parttable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// memDisk is a disk image in memory.
type memDisk []byte

func (d memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(d)) {
		return 0, io.EOF
	}
	n := copy(p, d[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(d[off:], p), nil }

const (
	testDiskGUID = "8d1c7a2e-4b3f-4e5d-9a1b-2c3d4e5f6a7b"
	testPartA    = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	testPartB    = "f0e1d2c3-b4a5-4968-8776-655443322110"
)

func gptDisk(t testing.TB, size int) memDisk {
	t.Helper()
	d := make(memDisk, size)
	err := WriteGPT(d, int64(size), testDiskGUID, []GPTEntry{
		{Type: LinuxFilesystemGUID, UUID: testPartA, Name: "vigil-root", Start: 2048, Sectors: 2048},
		{Type: LinuxFilesystemGUID, UUID: strings.ToUpper(testPartB), Name: "données é", Start: 4096, Sectors: 1024},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReadGPT(t *testing.T) {
	d := gptDisk(t, 4<<20)
	tab, err := Read(d, int64(len(d)))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Type != "gpt" || tab.UUID != testDiskGUID || tab.SectorSize != 512 {
		t.Fatalf("table = %+v", tab)
	}
	want := []Partition{
		{Number: 1, Start: 2048, Sectors: 2048, Type: LinuxFilesystemGUID, UUID: testPartA, Name: "vigil-root"},
		{Number: 2, Start: 4096, Sectors: 1024, Type: LinuxFilesystemGUID, UUID: testPartB, Name: "données é"},
	}
	if len(tab.Partitions) != len(want) {
		t.Fatalf("partitions = %+v", tab.Partitions)
	}
	for i, p := range want {
		if tab.Partitions[i] != p {
			t.Errorf("partition %d = %+v, want %+v", i+1, tab.Partitions[i], p)
		}
	}
	if p, ok := tab.Partition(2); !ok || p.Name != "données é" {
		t.Errorf("Partition(2) = %+v, %v", p, ok)
	}
	if _, ok := tab.Partition(3); ok {
		t.Errorf("Partition(3) found in a two-entry table")
	}
}

// TestReadGPTBackup: a primary header that fails its CRC is skipped for
// the backup at the end of the disk, as the kernel does.
func TestReadGPTBackup(t *testing.T) {
	d := gptDisk(t, 4<<20)
	d[512+100] ^= 0xff // inside the header's reserved area: the CRC breaks
	d[512+24] ^= 0x01  // and its own LBA
	tab, err := Read(d, int64(len(d)))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Type != "gpt" || len(tab.Partitions) != 2 || tab.Partitions[0].UUID != testPartA {
		t.Fatalf("from the backup: %+v", tab)
	}
	// Without the size the backup cannot be found; the protective MBR
	// alone is no table.
	if _, err := Read(d, 0); !errors.Is(err, ErrNoTable) {
		t.Fatalf("without size: err = %v, want ErrNoTable", err)
	}
}

// TestReadGPTEntriesCRC: entries that do not match their checksum are not
// trusted.
func TestReadGPTEntriesCRC(t *testing.T) {
	d := gptDisk(t, 4<<20)
	d[1024+56] ^= 0xff // primary entry 1's name
	copy(d[len(d)-512*33:], d[1024:1024+128*128])
	if _, err := Read(d, int64(len(d))); !errors.Is(err, ErrNoTable) {
		t.Fatalf("err = %v, want ErrNoTable", err)
	}
}

// mbrDisk has primaries 1 (0x83) and 2 (extended) and three logicals.
func mbrDisk() memDisk {
	d := make(memDisk, 8<<20)
	le := binary.LittleEndian
	entry := func(sector []byte, i int, typ byte, start, length uint32) {
		e := sector[446+16*i:]
		e[4] = typ
		le.PutUint32(e[8:], start)
		le.PutUint32(e[12:], length)
		sector[510], sector[511] = 0x55, 0xaa
	}
	le.PutUint32(d[440:], 0x1a2b3c4d)
	entry(d[0:], 0, 0x83, 2048, 2048)
	entry(d[0:], 1, 0x05, 4096, 8192)
	// EBRs at 4096, 6144, 8192 (relative to the extended start: 0, 2048, 4096).
	for i, ebr := range []uint32{4096, 6144, 8192} {
		s := d[ebr*512:]
		entry(s, 0, 0x83, 63, 1000)
		if i < 2 {
			entry(s, 1, 0x05, uint32(2048*(i+1)), 2048)
		}
	}
	return d
}

func TestReadMBRWithLogicals(t *testing.T) {
	tab, err := Read(mbrDisk(), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Type != "dos" || tab.UUID != "1a2b3c4d" {
		t.Fatalf("table = %+v", tab)
	}
	var got []string
	for _, p := range tab.Partitions {
		got = append(got, p.UUID+"@"+itoa(p.Start)+"/"+p.Type)
	}
	want := []string{"1a2b3c4d-01@2048/0x83", "1a2b3c4d-02@4096/0x5",
		"1a2b3c4d-05@4159/0x83", "1a2b3c4d-06@6207/0x83", "1a2b3c4d-07@8255/0x83"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("partitions\n got %v\nwant %v", got, want)
	}
}

// TestReadMBRLoopingChain: an EBR chain that points back to itself ends.
func TestReadMBRLoopingChain(t *testing.T) {
	d := mbrDisk()
	// The last EBR links back to the first.
	e := d[8192*512+446+16:]
	e[4] = 0x05
	binary.LittleEndian.PutUint32(e[8:], 0)
	binary.LittleEndian.PutUint32(e[12:], 2048)
	tab, err := Read(d, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 5 {
		t.Fatalf("partitions = %+v", tab.Partitions)
	}
}

func TestReadNoTable(t *testing.T) {
	for name, d := range map[string]memDisk{
		"empty": make(memDisk, 1<<20),
		"tiny":  make(memDisk, 100),
		"fat":   fatBootSector(),
	} {
		if _, err := Read(d, int64(len(d))); !errors.Is(err, ErrNoTable) {
			t.Errorf("%s: err = %v, want ErrNoTable", name, err)
		}
	}
}

// fatBootSector is a whole-disk FAT boot sector whose bytes happen to
// look like a used partition entry.
func fatBootSector() memDisk {
	d := make(memDisk, 1<<20)
	d[0], d[1], d[2] = 0xEB, 0x3C, 0x90
	copy(d[0x36:], "FAT16   ")
	d[446+4] = 0x06
	binary.LittleEndian.PutUint32(d[446+12:], 100)
	d[510], d[511] = 0x55, 0xaa
	return d
}

func TestGUIDRoundTrip(t *testing.T) {
	g, err := ParseGUID(strings.ToUpper(LinuxFilesystemGUID))
	if err != nil {
		t.Fatal(err)
	}
	// The on-disk form of this well-known GUID (mixed endian).
	if want := []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}; !bytes.Equal(g[:], want) {
		t.Fatalf("ParseGUID = % x, want % x", g, want)
	}
	if s := FormatGUID(g[:]); s != LinuxFilesystemGUID {
		t.Fatalf("FormatGUID = %s", s)
	}
	for _, bad := range []string{"", "0fc63daf-8483-4772-8e79-3d69d8477de", "0fc63daf-8483-4772-8e79x3d69d8477de4", "zfc63daf-8483-4772-8e79-3d69d8477de4"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

// TestWriteGPTAgreesWithPartx checks WriteGPT and Read against
// util-linux's libblkid (partx), when it is installed.
func TestWriteGPTAgreesWithPartx(t *testing.T) {
	partx, err := exec.LookPath("partx")
	if err != nil {
		t.Skip("partx not installed")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	d := gptDisk(t, 4<<20)
	if err := os.WriteFile(img, d, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(partx, "--show", "-g", "-o", "NR,START,UUID,NAME", img).CombinedOutput()
	if err != nil {
		t.Fatalf("partx: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("partx:\n%s", out)
	}
	tab, err := Read(d, int64(len(d)))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range lines {
		f := strings.Fields(line)
		p := tab.Partitions[i]
		if len(f) < 4 || f[0] != itoa(uint64(p.Number)) || f[1] != itoa(p.Start) || f[2] != p.UUID || strings.Join(f[3:], " ") != p.Name {
			t.Errorf("partx says %q, Read says %+v", line, p)
		}
	}
}

func itoa(n uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// TestReadSectorsMBR4K: on a disk of 4096-byte sectors the chain of
// extended boot records is found only with the disk's sector size.
func TestReadSectorsMBR4K(t *testing.T) {
	d := make(memDisk, 16<<20)
	le := binary.LittleEndian
	entry := func(sector []byte, i int, typ byte, start, length uint32) {
		e := sector[446+16*i:]
		e[4] = typ
		le.PutUint32(e[8:], start)
		le.PutUint32(e[12:], length)
		sector[510], sector[511] = 0x55, 0xaa
	}
	le.PutUint32(d[440:], 0xcafe0001)
	entry(d[0:], 0, 0x83, 256, 256)
	entry(d[0:], 1, 0x0f, 512, 1024)
	entry(d[512*4096:], 0, 0x83, 8, 100)   // logical 5 at 520
	entry(d[512*4096:], 1, 0x05, 256, 256) // next EBR at 768
	entry(d[768*4096:], 0, 0x07, 8, 100)   // logical 6 at 776
	tab, err := ReadSectors(d, int64(len(d)), 4096)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range tab.Partitions {
		got = append(got, p.UUID+"@"+itoa(p.Start))
	}
	if want := "cafe0001-01@256 cafe0001-02@512 cafe0001-05@520 cafe0001-06@776"; strings.Join(got, " ") != want || tab.SectorSize != 4096 {
		t.Fatalf("partitions %v (sector size %d), want %s", got, tab.SectorSize, want)
	}
	// Guessing 512-byte sectors loses the logicals.
	if guessed, err := Read(d, int64(len(d))); err != nil || len(guessed.Partitions) != 2 {
		t.Fatalf("Read = %+v, %v", guessed, err)
	}
	for _, bad := range []int{-1, 100, 513, 1 << 20} {
		if _, err := ReadSectors(d, int64(len(d)), bad); err == nil || errors.Is(err, ErrNoTable) {
			t.Errorf("sector size %d: err = %v", bad, err)
		}
	}
}

func TestLogicalSectorSize(t *testing.T) {
	dir := t.TempDir()
	if _, err := LogicalSectorSize(dir); err == nil {
		t.Fatal("no queue directory: no error")
	}
	if err := os.Mkdir(filepath.Join(dir, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	for content, want := range map[string]int{"4096\n": 4096, "512": 512, "0\n": 0, "abc": 0, "1000\n": 0} {
		if err := os.WriteFile(filepath.Join(dir, "queue", "logical_block_size"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := LogicalSectorSize(dir)
		if n != want || (err != nil) != (want == 0) {
			t.Errorf("%q: %d, %v; want %d", content, n, err, want)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(gptDisk(f, 4<<20)[:34*512]))
	f.Add([]byte(mbrDisk()[:64<<10]))
	f.Add([]byte(fatBootSector()[:512]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same bytes as a disk of 4096-byte sectors must not panic
		// either.
		_, _ = ReadSectors(memDisk(data), int64(len(data)), 4096)
		tab, err := Read(memDisk(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrNoTable) && !strings.Contains(err.Error(), "read") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if tab.Type != "gpt" && tab.Type != "dos" {
			t.Fatalf("type %q", tab.Type)
		}
		for i, p := range tab.Partitions {
			if p.Number <= 0 || (i > 0 && tab.Type == "gpt" && p.Number <= tab.Partitions[i-1].Number) {
				t.Fatalf("bad numbering %+v", tab.Partitions)
			}
		}
	})
}

// BenchmarkReadGPT is the cost of identifying one partition's table (done
// for every partition event).
func BenchmarkReadGPT(b *testing.B) {
	d := gptDisk(b, 4<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(d, int64(len(d))); err != nil {
			b.Fatal(err)
		}
	}
}
