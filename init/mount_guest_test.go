package pid1

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

const mountGuestScript = `

# fstab: UUID= resolved through /dev/disk/by-uuid, mounted at boot.
unit=mnt-data.mount
wait_for 60 initctl is-active mnt-data.mount || fail "mnt-data.mount: $(initctl is-active mnt-data.mount)"
[ "$(cat /mnt/data/hello.txt)" = "from the fstab disk" ] || fail "hello.txt: $(cat /mnt/data/hello.txt 2>&1)"
grep -q ' /mnt/data ext4 ' /proc/mounts || fail "not in /proc/mounts: $(cat /proc/mounts)"
echo "RESULT fstab-uuid ok"
# The line after the bad one was generated too.
wait_for 30 initctl is-active mnt-scratch.mount || { unit=mnt-scratch.mount; fail "mnt-scratch.mount: $(initctl is-active mnt-scratch.mount)"; }
echo "RESULT fstab-rest ok"
# A mount made by hand shows up as a unit; an umount by hand makes it go.
mkdir -p /mnt/byhand && mount -t tmpfs byhand /mnt/byhand
unit=mnt-byhand.mount
wait_for 30 initctl is-active mnt-byhand.mount || fail "foreign mount not active"
initctl list --type mount --all | grep -q mnt-byhand.mount || fail "foreign mount not listed: $(initctl list --type mount --all)"
umount /mnt/byhand
wait_for 30 sh -c '! initctl is-active mnt-byhand.mount' || fail "foreign unit still active after umount"
echo "RESULT foreign ok"
# Leave something to write back at shutdown.
echo "written in the guest" > /mnt/data/guest.txt

echo READY-FOR-HOTPLUG
unit=mnt-hot.mount
wait_for 120 initctl is-active mnt-hot.mount || fail "mnt-hot.mount: $(initctl is-active mnt-hot.mount)"
[ "$(cat /mnt/hot/hello.txt)" = "from the hot-plugged disk" ] || fail "hot hello.txt: $(cat /mnt/hot/hello.txt 2>&1)"
echo "RESULT hotplug-mounted ok"
echo READY-FOR-UNPLUG
wait_for 120 sh -c '! initctl is-active mnt-hot.mount' || fail "mnt-hot.mount still active after unplug"
grep -q ' /mnt/hot ' /proc/mounts && fail "/mnt/hot still mounted: $(grep /mnt/hot /proc/mounts)"
echo "RESULT hotplug-unmounted ok"
`

// TestMountsInGuest boots Vigil as PID 1 with an /etc/fstab naming an
// ext4 disk by UUID (with a bad line among good ones), checks that it is
// mounted at boot and a mount made by hand is tracked; then hot-plugs a
// second disk whose mount unit is wanted by its device and unplugs it;
// finally, after the guest powered off, e2fsck on the host must find the
// fstab disk clean (it was written to and unmounted at shutdown).
func TestMountsInGuest(t *testing.T) {
	skipWithoutModules(t)
	e2fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		t.Skip("e2fsck not installed")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	hot := filepath.Join(dir, "hot.img")
	const uuid = "5a1d7c3e-8f2b-4e6a-9c0d-1b2a3c4d5e6f"
	makeExt4(t, data, ext4Disk{label: "vigil-fstab", uuid: uuid, files: map[string]string{"hello.txt": "from the fstab disk"}})
	makeExt4(t, hot, ext4Disk{label: "vigil-hot", files: map[string]string{"hello.txt": "from the hot-plugged disk"}})
	fstab := fmt.Sprintf(`# Vigil's test fstab
UUID=%s /mnt/data ext4 defaults 0 2
this line is not an fstab entry at all really
scratch /mnt/scratch tmpfs size=1m,mode=0755 0 0
`, strings.ToUpper(uuid))
	units := map[string]string{
		"mnt-hot.mount": `[mount]
what = "/dev/vdb"
type = "ext4"
[install]
wanted-by = "dev-vdb.device"
`,
	}
	files := []initramfs.File{{Path: "/etc/fstab", Data: []byte(fstab), Mode: 0o644}}
	afterTarget := func(ctx context.Context, vm *qemu.VM) error {
		if _, err := vm.WaitForLine(ctx, "READY-FOR-HOTPLUG"); err != nil {
			return err
		}
		if err := vm.QMP().DeviceAdd(ctx, "virtio-blk-pci", "vblk1", map[string]any{"drive": "d1"}); err != nil {
			return fmt.Errorf("device_add: %w", err)
		}
		if _, err := vm.WaitForLine(ctx, "READY-FOR-UNPLUG"); err != nil {
			return err
		}
		if err := vm.QMP().DeviceDel(ctx, "vblk1"); err != nil {
			return fmt.Errorf("device_del: %w", err)
		}
		return nil
	}
	res := bootDiskGuest(t, qemu.RunConfig{
		Image:  initramfs.Spec{UnitDirs: []string{writeUnits(t, units)}, Files: files},
		Script: mountGuestScript,
		Boot: qemu.Config{
			Disks:        []string{data},
			HotplugDisks: []qemu.HotplugDisk{{ID: "d1", File: hot}},
		},
		Timeout:     5 * time.Minute,
		AfterTarget: afterTarget,
	}, 6*time.Minute)
	wantResults(t, res, "RESULT fstab-uuid ok", "RESULT fstab-rest ok", "RESULT foreign ok", "RESULT hotplug-mounted ok", "RESULT hotplug-unmounted ok")
	if !strings.Contains(res.Console, "/etc/fstab:3: want at least") && !strings.Contains(res.Console, "/etc/fstab:3:") {
		t.Errorf("the bad fstab line is not reported as /etc/fstab:3 on the console")
	}
	if !strings.Contains(res.Console, "Unmounting /mnt/data") && !strings.Contains(res.Console, "Unmounted /mnt/data") {
		t.Errorf("no unmount of /mnt/data at shutdown on the console")
	}
	// Shutdown unmounted the disk: the host's e2fsck finds it clean.
	if out, err := exec.Command(e2fsck, "-n", "-f", data).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -n -f after shutdown: %v\n%s", err, out)
	}
}
