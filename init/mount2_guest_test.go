package pid1

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/observer/uevent/parttable"
	"vigil/qemu"
)

// makeGPTTestDisk writes a 20 MiB disk with a GPT (written by Go, by
// parttable.WriteGPT, whose tables parttable's tests check against
// sfdisk, sgdisk and blkid) of two partitions, each an 8 MiB ext4 file
// system holding hello.txt.
func makeGPTTestDisk(t *testing.T, path string, parts []parttable.GPTEntry, contents []string) {
	t.Helper()
	const size = 20 << 20
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := parttable.WriteGPT(f, size, "3b5c0a9e-7d21-4c6f-8e3a-0f1e2d3c4b5a", parts); err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		fs := filepath.Join(t.TempDir(), "fs.img")
		makeExt4(t, fs, ext4Disk{label: fmt.Sprintf("vigil-p%d", i+1), files: map[string]string{"hello.txt": contents[i]}})
		data, err := os.ReadFile(fs)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(data)) > p.Sectors*512 {
			t.Fatalf("file system of %d bytes does not fit partition %d", len(data), i+1)
		}
		if _, err := f.WriteAt(data, int64(p.Start)*512); err != nil {
			t.Fatal(err)
		}
	}
}

const mount2GuestScript = `

# PARTUUID= in fstab, through /dev/disk/by-partuuid made from the GPT.
unit=mnt-part.mount
wait_for 60 initctl is-active mnt-part.mount || fail "mnt-part.mount: $(initctl is-active mnt-part.mount); links: $(ls /dev/disk/by-partuuid 2>&1)"
[ "$(cat /mnt/part/hello.txt)" = "from partition one" ] || fail "part hello.txt: $(cat /mnt/part/hello.txt 2>&1)"
[ "$(readlink /dev/disk/by-partuuid/@PARTUUID1@)" = "../../vda1" ] || fail "by-partuuid link: $(ls -l /dev/disk/by-partuuid 2>&1)"
grep -q '^/dev/vda1 /mnt/part ext4 ' /proc/mounts || fail "vda1 not at /mnt/part: $(cat /proc/mounts)"
echo "RESULT partuuid ok"

# PARTLABEL= in fstab, through /dev/disk/by-partlabel (the GPT entry name).
unit=mnt-plabel.mount
wait_for 60 initctl is-active mnt-plabel.mount || fail "mnt-plabel.mount: $(initctl is-active mnt-plabel.mount); links: $(ls /dev/disk/by-partlabel 2>&1)"
[ "$(cat /mnt/plabel/hello.txt)" = "from partition two" ] || fail "plabel hello.txt: $(cat /mnt/plabel/hello.txt 2>&1)"
[ "$(readlink '/dev/disk/by-partlabel/vigil\x20second')" = "../../vda2" ] || fail "by-partlabel link: $(ls -l /dev/disk/by-partlabel 2>&1)"
echo "RESULT partlabel ok"

# A loop mount of an image file from fstab, with the loop option.
unit=mnt-img.mount
wait_for 60 initctl is-active mnt-img.mount || fail "mnt-img.mount: $(initctl is-active mnt-img.mount)"
[ "$(cat /mnt/img/hello.txt)" = "from the image file" ] || fail "img hello.txt: $(cat /mnt/img/hello.txt 2>&1)"
src=$(grep ' /mnt/img ' /proc/mounts | cut -d' ' -f1)
case "$src" in /dev/loop*) ;; *) fail "/mnt/img mounted from '$src'";; esac
dev=${src#/dev/}
[ "$(cat /sys/block/$dev/loop/backing_file)" = /srv/img.ext4 ] || fail "$dev backed by $(cat /sys/block/$dev/loop/backing_file 2>&1)"
[ "$(cat /sys/block/$dev/loop/autoclear)" = 1 ] || fail "$dev without autoclear"
initctl stop mnt-img.mount || fail "stop"
wait_for 30 sh -c "[ ! -e /sys/block/$dev/loop/backing_file ]" || fail "$dev still attached after the unmount"
echo "RESULT loop ok"
`

// TestPartitionAndLoopMountsInGuest boots Vigil with a GPT disk (made by
// Go code on the host) whose partitions are mounted from /etc/fstab by
// PARTUUID= and PARTLABEL=, and an ext4 image file in the initramfs
// mounted through a loop device (fstab "loop"); the loop device must be
// gone after the unit stops.
func TestPartitionAndLoopMountsInGuest(t *testing.T) {
	skipWithoutModules(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "gpt.img")
	const partUUID1, partUUID2 = "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "7f2a3b4c-5d6e-4f70-9bac-1d2e3f4a5b6c"
	makeGPTTestDisk(t, disk, []parttable.GPTEntry{
		{Type: parttable.LinuxFilesystemGUID, UUID: partUUID1, Name: "vigil first", Start: 2048, Sectors: 16384},
		{Type: parttable.LinuxFilesystemGUID, UUID: partUUID2, Name: "vigil second", Start: 18432, Sectors: 16384},
	}, []string{"from partition one", "from partition two"})
	img := filepath.Join(dir, "img.ext4")
	makeExt4(t, img, ext4Disk{label: "vigil-img", files: map[string]string{"hello.txt": "from the image file"}})
	imgData, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fstab := fmt.Sprintf(`PARTUUID=%s /mnt/part ext4 defaults 0 2
PARTLABEL=vigil\040second /mnt/plabel ext4 defaults 0 2
/srv/img.ext4 /mnt/img ext4 loop 0 0
`, strings.ToUpper(partUUID1))
	files := []initramfs.File{
		{Path: "/etc/fstab", Data: []byte(fstab), Mode: 0o644},
		{Path: "/srv/img.ext4", Data: imgData, Mode: 0o644},
	}
	res := bootDiskGuest(t, qemu.RunConfig{
		Image:   initramfs.Spec{UnitDirs: []string{writeUnits(t, nil)}, Files: files},
		Script:  strings.ReplaceAll(mount2GuestScript, "@PARTUUID1@", partUUID1),
		Boot:    qemu.Config{Disks: []string{disk}},
		Timeout: 4 * time.Minute,
	}, 5*time.Minute)
	wantResults(t, res, "RESULT partuuid ok", "RESULT partlabel ok", "RESULT loop ok")
}

// writeTable4K writes a partition table with sfdisk (its script) onto
// the image at path as a disk of 4096-byte logical sectors: through a
// loop device of that sector size, as sfdisk 2.38 has no option for it.
func writeTable4K(t *testing.T, path, script string) {
	t.Helper()
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		t.Skip("sfdisk not installed (scripts/install-deps.sh installs it)")
	}
	if os.Getuid() != 0 {
		t.Skip("a loop device with 4096-byte sectors needs root")
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", "-b", "4096", path).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	cmd := exec.Command(sfdisk, "-q", "--no-reread", dev)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", dev, err, out)
	}
}

const tables4KGuestScript = `
# check LINK NUMBER START: LINK names the partition the kernel numbers
# NUMBER, starting at START (512-byte units, as sysfs counts).
check() {
	l=/dev/disk/by-$1
	t=$(readlink "$l") || fail "no $l: $(ls -l /dev/disk/by-partuuid /dev/disk/by-partlabel 2>&1)"
	d=${t##*/}
	[ "$(cat /sys/class/block/$d/partition)" = "$2" ] || fail "$l -> $d, partition $(cat /sys/class/block/$d/partition), want $2"
	[ "$(cat /sys/class/block/$d/start)" = "$3" ] || fail "$l -> $d starts at $(cat /sys/class/block/$d/start), want $3"
	[ "$(cat /sys/class/block/$d/../queue/logical_block_size)" = 4096 ] || fail "$d is not on a 4096-byte-sector disk"
}
echo READY-FOR-DISKS
wait_for 120 test -L /dev/disk/by-partuuid/5a6b7c8d-07 || fail "no link of logical partition 7: $(ls -l /dev/disk/by-partuuid 2>&1)"
check partuuid/5a6b7c8d-01 1 2048
check partuuid/5a6b7c8d-03 3 102400
check partuuid/5a6b7c8d-05 5 12288
check partuuid/5a6b7c8d-06 6 22528
check partuuid/5a6b7c8d-07 7 32768
echo "RESULT mbr-4k ok"
wait_for 60 test -L '/dev/disk/by-partlabel/vigil\x20four' || fail "no by-partlabel link: $(ls -l /dev/disk/by-partlabel 2>&1)"
check partuuid/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d 1 2048
check 'partlabel/vigil\x20four' 1 2048
check partuuid/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e 2 16384
echo "RESULT gpt-4k ok"
`

// TestPartitionTables4KInGuest hot-plugs two disks of 4096-byte logical
// sectors, one with an MBR holding logical partitions and one with a GPT,
// both written by sfdisk: the guest kernel parses them, and Vigil must
// make the by-partuuid and by-partlabel links of every partition (the
// MBR's chain of logical partitions counts in 4 KiB sectors).
func TestPartitionTables4KInGuest(t *testing.T) {
	skipWithoutModules(t)
	dir := t.TempDir()
	mbr, gpt := filepath.Join(dir, "mbr4k.img"), filepath.Join(dir, "gpt4k.img")
	writeTable4K(t, mbr, `label: dos
label-id: 0x5a6b7c8d
start=256, size=1024, type=83
start=1280, size=10240, type=f
start=1536, size=1024, type=83
start=2816, size=1024, type=7
start=4096, size=1024, type=83
start=12800, size=1024, type=8e
`)
	writeTable4K(t, gpt, `label: gpt
label-id: 3B5C0A9E-7D21-4C6F-8E3A-0F1E2D3C4B5A
start=256, size=1024, name="vigil four", uuid=9A8B7C6D-5E4F-4A3B-8C2D-1E0F9A8B7C6D
start=2048, size=1024, uuid=0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4E
`)
	sectors4K := func(drive string) map[string]any {
		return map[string]any{"drive": drive, "logical_block_size": 4096, "physical_block_size": 4096}
	}
	afterTarget := func(ctx context.Context, vm *qemu.VM) error {
		if _, err := vm.WaitForLine(ctx, "READY-FOR-DISKS"); err != nil {
			return err
		}
		for i, drive := range []string{"d1", "d2"} {
			if err := vm.QMP().DeviceAdd(ctx, "virtio-blk-pci", fmt.Sprintf("vblk%d", i+1), sectors4K(drive)); err != nil {
				return fmt.Errorf("device_add %s: %w", drive, err)
			}
		}
		return nil
	}
	res := bootDiskGuest(t, qemu.RunConfig{
		Image:  initramfs.Spec{UnitDirs: []string{writeUnits(t, nil)}},
		Script: tables4KGuestScript,
		Boot: qemu.Config{
			HotplugDisks: []qemu.HotplugDisk{{ID: "d1", File: mbr}, {ID: "d2", File: gpt}},
		},
		Timeout:     4 * time.Minute,
		AfterTarget: afterTarget,
	}, 5*time.Minute)
	wantResults(t, res, "RESULT mbr-4k ok", "RESULT gpt-4k ok")
}
