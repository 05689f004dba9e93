package blkid

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// image is a file system made by the real mkfs tool in a sparse file.
type image struct {
	name string
	size int64
	mkfs []string // the command; the image path is appended
	want Identity
}

var images = []image{
	{"ext4", 8 << 20, []string{"mkfs.ext4", "-q", "-F", "-U", "3f8b5a2e-1c4d-4e6f-8a9b-0c1d2e3f4a5b", "-L", "my disk"},
		Identity{"ext4", "3f8b5a2e-1c4d-4e6f-8a9b-0c1d2e3f4a5b", "my disk"}},
	{"ext3", 8 << 20, []string{"mke2fs", "-q", "-F", "-t", "ext3", "-U", "11111111-2222-4333-8444-555555555555", "-L", "old"},
		Identity{"ext3", "11111111-2222-4333-8444-555555555555", "old"}},
	{"ext2", 8 << 20, []string{"mke2fs", "-q", "-F", "-t", "ext2", "-U", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"},
		Identity{"ext2", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", ""}},
	{"vfat16", 16 << 20, []string{"mkfs.vfat", "-i", "1234ABCD", "-n", "EFI"},
		Identity{"vfat", "1234-ABCD", "EFI"}},
	{"vfat32", 64 << 20, []string{"mkfs.vfat", "-F", "32", "-i", "DEADBEEF", "-n", "BOOT PART"},
		Identity{"vfat", "DEAD-BEEF", "BOOT PART"}},
	{"vfat-nolabel", 2 << 20, []string{"mkfs.vfat", "-i", "00C0FFEE"},
		Identity{"vfat", "00C0-FFEE", ""}},
	{"swap", 4 << 20, []string{"mkswap", "-U", "c0ffee00-1234-4567-89ab-cdef01234567", "-L", "swappy"},
		Identity{"swap", "c0ffee00-1234-4567-89ab-cdef01234567", "swappy"}},
	{"xfs", 320 << 20, []string{"mkfs.xfs", "-q", "-f", "-m", "uuid=5e1f0000-aaaa-4bbb-8ccc-dddddddddddd", "-L", "xdata"},
		Identity{"xfs", "5e1f0000-aaaa-4bbb-8ccc-dddddddddddd", "xdata"}},
	{"btrfs", 128 << 20, []string{"mkfs.btrfs", "-q", "-f", "-U", "b7f5e3a1-0000-4111-8222-333333333333", "-L", "pool"},
		Identity{"btrfs", "b7f5e3a1-0000-4111-8222-333333333333", "pool"}},
}

// makeImage runs mkfs on a sparse file; it skips when the tool is missing.
func makeImage(t testing.TB, dir string, img image) string {
	t.Helper()
	if _, err := exec.LookPath(img.mkfs[0]); err != nil {
		t.Skipf("%s not installed", img.mkfs[0])
	}
	path := filepath.Join(dir, img.name+".img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, img.size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(img.mkfs[0], append(img.mkfs[1:], path)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return path
}

// blkidSays asks the real blkid (low-level probing, no cache).
func blkidSays(t *testing.T, path string) map[string]string {
	out, err := exec.Command("blkid", "-p", "-o", "udev", path).Output()
	if err != nil {
		t.Logf("blkid: %v", err)
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestProbeRealImages(t *testing.T) {
	dir := t.TempDir()
	for _, img := range images {
		t.Run(img.name, func(t *testing.T) {
			path := makeImage(t, dir, img)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			typ, uuid, label, err := Probe(f)
			got := Identity{typ, uuid, label}
			if err != nil || got != img.want {
				t.Fatalf("Probe = %+v, %v; want %+v", got, err, img.want)
			}
			if _, err := exec.LookPath("blkid"); err == nil {
				b := blkidSays(t, path)
				if b != nil && (b["ID_FS_TYPE"] != got.Type || b["ID_FS_UUID"] != got.UUID) {
					t.Errorf("blkid says %v, Probe %+v", b, got)
				}
			}
		})
	}
}

func TestProbeUnknownAndShort(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"zeros":  make([]byte, 1<<20),
		"tiny":   []byte("XFSB"),
		"random": bytes.Repeat([]byte{0x55, 0xAA, 0x12, 0xEF, 0x53}, 30000),
	} {
		if typ, _, _, err := Probe(bytes.NewReader(data)); !errors.Is(err, ErrUnknown) {
			t.Errorf("%s: %q, %v", name, typ, err)
		}
	}
	// A read error is reported as such, not as "unknown".
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, _, err := Probe(f); err == nil || errors.Is(err, ErrUnknown) {
		t.Errorf("probing a directory: %v", err)
	}
}

// An ext4 image whose superblock is then damaged is no longer ext4.
func TestProbeDamagedSuperblock(t *testing.T) {
	path := makeImage(t, t.TempDir(), images[0])
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[1024+0x38] = 0
	if typ, _, _, err := Probe(bytes.NewReader(data)); !errors.Is(err, ErrUnknown) {
		t.Errorf("damaged ext4: %q, %v", typ, err)
	}
}

// FuzzProbe: nothing panics, and whatever is found is a known type.
func FuzzProbe(f *testing.F) {
	dir := f.TempDir()
	for _, img := range images {
		if img.size > 64<<20 {
			continue // keep the seed corpus small
		}
		if _, err := exec.LookPath(img.mkfs[0]); err != nil {
			continue
		}
		path := makeImage(f, dir, img)
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 72<<10)])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 4096))
	known := map[string]bool{"ext2": true, "ext3": true, "ext4": true, "jbd": true, "vfat": true, "xfs": true, "btrfs": true, "swap": true}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ProbeIdentity(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrUnknown) {
				t.Fatalf("error %v from an in-memory reader", err)
			}
			return
		}
		if !known[id.Type] {
			t.Fatalf("unknown type %q", id.Type)
		}
	})
}

func BenchmarkProbeExt4(b *testing.B) {
	path := makeImage(b, b.TempDir(), images[0])
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, _, _, err := Probe(f); err != nil {
			b.Fatal(err)
		}
	}
}
