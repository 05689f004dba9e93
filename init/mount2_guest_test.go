package pid1

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/observer/uevent/parttable"
	"vigil/qemu"
)

// makeGPTTestDisk writes a 20 MiB disk with a GPT (written by Go, by
// parttable.WriteGPT: sfdisk is not installed on these hosts) of two
// partitions, each an 8 MiB ext4 file system holding hello.txt.
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
		makeFstabTestDisk(t, fs, "", fmt.Sprintf("vigil-p%d", i+1), contents[i])
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
fail() { echo "FAIL $*"; initctl status "$unit" 2>&1 | sed 's/^/  /'; exit 1; }
wait_for() { # seconds, command...
	n=$(($1 * 10)); shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1)); [ $n -gt 0 ] || return 1
		sleep 0.1
	done
}

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
	makeFstabTestDisk(t, img, "", "vigil-img", "from the image file")
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image:   initramfs.Spec{UnitDirs: []string{writeUnits(t, nil)}, Files: files},
		Script:  strings.ReplaceAll(mount2GuestScript, "@PARTUUID1@", partUUID1),
		Boot:    qemu.Config{Disks: []string{disk}},
		Timeout: 4 * time.Minute,
	})
	keepConsole(t, res)
	if err != nil {
		console := ""
		if res != nil {
			console = res.Console
		}
		t.Fatalf("guest run: %v\n%s", err, console)
	}
	if res.ExitStatus != 0 {
		t.Fatalf("guest script failed (%d):\n%s\n--- console:\n%s", res.ExitStatus, strings.Join(res.ScriptOutput, "\n"), res.Console)
	}
	for _, want := range []string{"RESULT partuuid ok", "RESULT partlabel ok", "RESULT loop ok"} {
		if !slices.Contains(res.ScriptOutput, want) {
			t.Errorf("missing %q in the script's output:\n%s", want, strings.Join(res.ScriptOutput, "\n"))
		}
	}
}
