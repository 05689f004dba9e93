package parttable_test

// Tables written by the real tools (sfdisk from util-linux's fdisk
// package, sgdisk from gdisk; scripts/install-deps.sh installs both) and
// read back by libblkid (partx on image files, blkid -p on the partitions
// of a loop device), the library udev uses for ID_PART_ENTRY_*: what
// parttable reads must be what udev would have said.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/observer/uevent/devnode"
	"vigil/observer/uevent/parttable"
)

// needTool finds a program the test cannot do without. CI installs them
// through scripts/install-deps.sh, so a missing one is only skipped.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (scripts/install-deps.sh installs it)", name)
	}
	return p
}

func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func newImage(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return img
}

func readTable(t *testing.T, path string, sectorSize int) parttable.Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parttable.ReadSectors(f, size, sectorSize)
	if err != nil {
		t.Fatalf("ReadSectors(%s, %d): %v", path, sectorSize, err)
	}
	return tab
}

// libblkidEntry is one partition as partx lists it (START and SECTORS in
// 512-byte units, whatever the disk's sector size).
type libblkidEntry struct{ nr, start, sectors, uuid, typ, name string }

// partxEntries lists the partitions libblkid finds on path.
func partxEntries(t *testing.T, path string) []libblkidEntry {
	t.Helper()
	out := runTool(t, "", "partx", "-g", "-P", "-o", "NR,START,SECTORS,UUID,TYPE,NAME", path)
	var es []libblkidEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		kv := pairs(t, line)
		es = append(es, libblkidEntry{kv["NR"], kv["START"], kv["SECTORS"], kv["UUID"], kv["TYPE"], kv["NAME"]})
	}
	return es
}

// pairs parses util-linux's KEY="value" output, whose values escape
// anything unusual as \xNN.
func pairs(t *testing.T, line string) map[string]string {
	t.Helper()
	kv := map[string]string{}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		key, rest, ok := strings.Cut(line, `="`)
		end := strings.Index(rest, `"`)
		if !ok || end < 0 {
			t.Fatalf("partx output %q", line)
		}
		v, err := strconv.Unquote(`"` + rest[:end] + `"`)
		if err != nil {
			t.Fatalf("partx value %q: %v", rest[:end], err)
		}
		kv[key], line = v, rest[end+1:]
	}
	return kv
}

// compareWithLibblkid checks every partition of tab against libblkid's.
func compareWithLibblkid(t *testing.T, tab parttable.Table, want []libblkidEntry) {
	t.Helper()
	if len(tab.Partitions) != len(want) {
		t.Fatalf("parttable finds %d partitions %+v, libblkid %d %+v", len(tab.Partitions), tab.Partitions, len(want), want)
	}
	per512 := uint64(tab.SectorSize / 512)
	for i, p := range tab.Partitions {
		got := libblkidEntry{strconv.Itoa(p.Number), strconv.FormatUint(p.Start*per512, 10),
			strconv.FormatUint(p.Sectors*per512, 10), p.UUID, p.Type, p.Name}
		if got != want[i] {
			t.Errorf("partition %d:\n parttable %+v\n libblkid  %+v", i+1, got, want[i])
		}
	}
}

// mbrScript has primaries 1 and 2 (one of them bootable), an extended
// partition 3 holding logicals 5, 6 and 7, and a fourth primary, in
// units of 512-byte sectors for a 64 MiB disk.
const mbrScript = `label: dos
label-id: 0x1a2b3c4d
start=2048, size=8192, type=83
start=10240, size=8192, type=82, bootable
start=18432, size=81920, type=5
start=20480, size=8192, type=83
start=30720, size=8192, type=b
start=40960, size=8192, type=83
start=102400, size=8192, type=8e
`

// TestSfdiskMBRAgreesWithLibblkid: an MBR with logical partitions, as
// sfdisk writes it, read as libblkid reads it: numbers (logicals from 5),
// starts, types and PARTUUIDs; then with a zero disk signature, which
// gives no PARTUUIDs at all.
func TestSfdiskMBRAgreesWithLibblkid(t *testing.T) {
	img := newImage(t, 64<<20)
	runTool(t, mbrScript, "sfdisk", "-q", img)
	tab := readTable(t, img, 512)
	if tab.Type != "dos" || tab.UUID != "1a2b3c4d" {
		t.Fatalf("table %+v", tab)
	}
	want := partxEntries(t, img)
	if len(want) != 7 || want[5].nr != "6" || want[5].uuid != "1a2b3c4d-06" {
		t.Fatalf("libblkid does not see the table sfdisk wrote: %+v", want)
	}
	compareWithLibblkid(t, tab, want)
	// Read, guessing the sector size, agrees on a 512-byte disk.
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	guessed, err := parttable.Read(f, 64<<20)
	f.Close()
	if err != nil || len(guessed.Partitions) != len(tab.Partitions) {
		t.Fatalf("Read: %+v, %v", guessed, err)
	}

	t.Run("zero signature", func(t *testing.T) {
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(make([]byte, 4), 440)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		tab := readTable(t, img, 512)
		if tab.UUID != "" {
			t.Errorf("table UUID %q from a zero signature", tab.UUID)
		}
		compareWithLibblkid(t, tab, partxEntries(t, img))
	})
}

// TestGPTToolsAgreeWithLibblkid: GPTs written by sgdisk and sfdisk, with
// names libblkid trims (trailing spaces) and escapes (non-ASCII, quotes).
func TestGPTToolsAgreeWithLibblkid(t *testing.T) {
	t.Run("sgdisk", func(t *testing.T) {
		img := newImage(t, 32<<20)
		runTool(t, "", "sgdisk", "-o", "-U", "11111111-2222-4333-8444-555555555555",
			"-n", "1:2048:+4M", "-c", "1:data  x  ", "-u", "1:AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE",
			"-n", "3:0:+4M", "-c", `3:dé"q\`, "-t", "3:8200",
			"-n", "2:0:+1M", img)
		tab := readTable(t, img, 512)
		if tab.Type != "gpt" || tab.UUID != "11111111-2222-4333-8444-555555555555" {
			t.Fatalf("table %+v", tab)
		}
		if p, ok := tab.Partition(1); !ok || p.UUID != "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee" || p.Name != "data  x" {
			t.Errorf("partition 1 = %+v", p)
		}
		compareWithLibblkid(t, tab, partxEntries(t, img))
	})
	t.Run("sfdisk", func(t *testing.T) {
		img := newImage(t, 32<<20)
		runTool(t, `label: gpt
label-id: 3B5C0A9E-7D21-4C6F-8E3A-0F1E2D3C4B5A
table-length: 8
start=2048, size=4096, type=L, name="vigil first"
start=8192, size=4096, type=S, uuid=0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D
`, "sfdisk", "-q", img)
		tab := readTable(t, img, 512)
		if tab.UUID != "3b5c0a9e-7d21-4c6f-8e3a-0f1e2d3c4b5a" {
			t.Fatalf("table %+v", tab)
		}
		compareWithLibblkid(t, tab, partxEntries(t, img))
	})
	t.Run("relabelled as MBR", func(t *testing.T) {
		// A GPT disk whose first sector now holds an MBR (as left by a
		// tool that writes only sector 0): the MBR is the table, for the
		// kernel and libblkid alike.
		img := newImage(t, 32<<20)
		runTool(t, "", "sgdisk", "-o", "-n", "1:2048:+4M", img)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		mbr := make([]byte, 512)
		copy(mbr[440:], []byte{0x78, 0x56, 0x34, 0x12})
		copy(mbr[446:], []byte{0, 0, 0, 0, 0x83, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0, 0})
		mbr[510], mbr[511] = 0x55, 0xaa
		if _, err := f.WriteAt(mbr, 0); err != nil {
			t.Fatal(err)
		}
		tab := readTable(t, img, 512)
		if tab.Type != "dos" || tab.UUID != "12345678" {
			t.Fatalf("table %+v, want the MBR", tab)
		}
		compareWithLibblkid(t, tab, partxEntries(t, img))
	})
}

// loopDisk attaches img to a loop device with the given logical sector
// size and has the partitions added as the kernel's devices (partx -a:
// the host kernel may not parse tables itself). It gives the loop device.
func loopDisk(t *testing.T, img string, sectorSize int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	needTool(t, "blkid")
	out, err := exec.Command(needTool(t, "losetup"), "-f", "--show", "-b", strconv.Itoa(sectorSize), img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	// A loop device detached with partitions partx added keeps them.
	_ = exec.Command("partx", "-d", dev).Run()
	t.Cleanup(func() {
		// partx -d first: a detached loop keeps its partition devices
		// while they are open, and autoclear would wait for them.
		_ = exec.Command("partx", "-d", dev).Run()
		_ = exec.Command("losetup", "-d", dev).Run()
	})
	return dev
}

// kernelPartitions gives the partition numbers and sysfs directories of
// the loop disk dev (after asking partx to add what the kernel has not).
func kernelPartitions(t *testing.T, dev string) map[int]string {
	t.Helper()
	// Errors are expected: partitions the kernel already added, and an
	// extended partition shorter than a 4 KiB sector.
	_ = exec.Command("partx", "-a", dev).Run()
	disk := filepath.Join("/sys/class/block", filepath.Base(dev))
	matches, _ := filepath.Glob(filepath.Join(disk, filepath.Base(dev)+"p*"))
	parts := map[int]string{}
	for _, m := range matches {
		b, err := os.ReadFile(filepath.Join(m, "partition"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		parts[n] = m
	}
	return parts
}

// blkidValue asks blkid -p about one tag of the partition whose sysfs
// directory is sysDir, through a device node of its own (the host's /dev
// may hold stale partition nodes).
func blkidValue(t *testing.T, sysDir, tag string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sysDir, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(t.TempDir(), filepath.Base(sysDir))
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Skipf("mknod %s: %v", node, err)
	}
	out, err := exec.Command("blkid", "-p", "-o", "value", "-s", tag, node).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 2 {
		return "" // nothing found for the tag
	}
	if err != nil {
		t.Fatalf("blkid -p -s %s %s: %v", tag, node, err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// TestLoopTablesAgreeWithBlkid writes tables with sfdisk and sgdisk onto
// loop devices of 512- and 4096-byte logical sectors and checks, for
// every partition device, what Vigil's partition probe (reading the
// sector size from sysfs) says against blkid -p: PARTUUID, PARTLABEL,
// number and type, and the start against the kernel's.
func TestLoopTablesAgreeWithBlkid(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sectorSize int
		write      func(t *testing.T, dev string)
		partitions int // that the kernel knows
	}{
		{"mbr-4096", 4096, func(t *testing.T, dev string) {
			// In 4 KiB sectors: the same layout as mbrScript, divided by 8.
			runTool(t, `label: dos
label-id: 0x5a6b7c8d
start=256, size=1024, type=83
start=1280, size=10240, type=f
start=1536, size=1024, type=83
start=2816, size=1024, type=7
start=4096, size=1024, type=83
start=12800, size=1024, type=8e
`, "sfdisk", "-q", "--no-reread", dev)
		}, 5},
		{"mbr-512", 512, func(t *testing.T, dev string) {
			runTool(t, mbrScript, "sfdisk", "-q", "--no-reread", dev)
		}, 7},
		{"gpt-sgdisk-4096", 4096, func(t *testing.T, dev string) {
			runTool(t, "", "sgdisk", "-o", "-n", "1:256:+4M", "-c", "1:vigil data", "-n", "2:0:+4M", "-c", "2:zwei ", "-t", "2:8200", dev)
		}, 2},
		{"gpt-sfdisk-4096", 4096, func(t *testing.T, dev string) {
			runTool(t, "label: gpt\nstart=256, size=1024, name=\"eins\"\nstart=2048, size=1024, type=S\n", "sfdisk", "-q", "--no-reread", dev)
		}, 2},
		{"gpt-sgdisk-512", 512, func(t *testing.T, dev string) {
			runTool(t, "", "sgdisk", "-o", "-n", "1:2048:+4M", "-c", "1:vigil data", "-n", "2:0:+4M", dev)
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := newImage(t, 64<<20)
			dev := loopDisk(t, img, tc.sectorSize)
			tc.write(t, dev)
			parts := kernelPartitions(t, dev)
			if len(parts) < tc.partitions {
				t.Fatalf("the kernel knows partitions %v of %s, want at least %d", parts, dev, tc.partitions)
			}
			diskSys, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", filepath.Base(dev)))
			if err != nil {
				t.Fatal(err)
			}
			if ss, err := parttable.LogicalSectorSize(diskSys); err != nil || ss != tc.sectorSize {
				t.Fatalf("LogicalSectorSize(%s) = %d, %v", diskSys, ss, err)
			}
			tab := readTable(t, dev, tc.sectorSize)
			if uuid := blkidWhole(t, dev); uuid != tab.UUID {
				t.Errorf("PTUUID: blkid %q, parttable %q", uuid, tab.UUID)
			}
			for n, sysDir := range parts {
				real, err := filepath.EvalSymlinks(sysDir)
				if err != nil {
					t.Fatal(err)
				}
				devpath := strings.TrimPrefix(real, "/sys")
				env := map[string]string{"DEVTYPE": "partition", "PARTN": strconv.Itoa(n)}
				links, err := devnode.ProbePartition("/sys", "/", "/dev/"+filepath.Base(sysDir), devpath, env)
				if err != nil {
					t.Fatalf("partition %d: %v", n, err)
				}
				for tag, key := range map[string]string{"PART_ENTRY_UUID": "ID_PART_ENTRY_UUID", "PART_ENTRY_NUMBER": "ID_PART_ENTRY_NUMBER",
					"PART_ENTRY_TYPE": "ID_PART_ENTRY_TYPE", "PART_ENTRY_NAME": "ID_PART_ENTRY_NAME", "PART_ENTRY_SCHEME": "ID_PART_TABLE_TYPE"} {
					want := blkidValue(t, sysDir, tag)
					if tag == "PART_ENTRY_NAME" {
						want = devnode.EncodeName(want) // as `blkid -o udev` and udev print it
					}
					if env[key] != want {
						t.Errorf("partition %d: %s = %q, blkid's %s = %q", n, key, env[key], tag, want)
					}
				}
				if uuid := env["ID_PART_ENTRY_UUID"]; uuid == "" || len(links) == 0 || links[0].Path != "/dev/disk/by-partuuid/"+uuid {
					t.Errorf("partition %d: links %v", n, links)
				}
				// The kernel's start (512-byte units) is where parttable
				// puts the partition.
				b, err := os.ReadFile(filepath.Join(sysDir, "start"))
				if err != nil {
					t.Fatal(err)
				}
				p, _ := tab.Partition(n)
				if want := strings.TrimSpace(string(b)); strconv.FormatUint(p.Start*uint64(tc.sectorSize/512), 10) != want {
					t.Errorf("partition %d starts at %d sectors of %d bytes; the kernel says %s×512", n, p.Start, tc.sectorSize, want)
				}
			}
		})
	}
}

// blkidWhole gives blkid -p's PTUUID of a whole disk.
func blkidWhole(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "PTUUID", dev).Output()
	if err != nil {
		t.Fatalf("blkid -p %s: %v", dev, err)
	}
	return strings.TrimSpace(string(out))
}
