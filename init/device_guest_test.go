package pid1

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// The guest script for TestDeviceHotplugInGuest. It talks to the host's
// AfterTarget through console lines (READY-FOR-...) and reports with
// "RESULT key value" lines.
const deviceGuestScript = `

# Coldplug: the boot disk was there before Vigil; its driver was not
# loaded (virtio_blk is not in modules-load.d) until coldplug's MODALIAS.
wait_for 60 initctl is-active dev-vda.device || fail "dev-vda.device: $(initctl is-active dev-vda.device)"
[ -d /sys/module/virtio_blk ] || fail "virtio_blk not loaded"
[ -L /dev/disk/by-label/vigil-boot ] || fail "no by-label link for vda"
echo "RESULT coldplug-vda ok"
[ -d /sys/module/virtio_rng ] && fail "virtio_rng loaded before its device came"

echo READY-FOR-HOTPLUG
wait_for 120 initctl is-active dev-vdb.device || fail "dev-vdb.device: $(initctl is-active dev-vdb.device)"
wait_for 30 test -L /dev/disk/by-uuid/@UUID@ || fail "no /dev/disk/by-uuid/@UUID@: $(ls -l /dev/disk/by-uuid)"
[ "$(readlink /dev/disk/by-uuid/@UUID@)" = ../../vdb ] || fail "by-uuid link: $(readlink /dev/disk/by-uuid/@UUID@)"
bypath=$(for l in /dev/disk/by-path/virtio-pci-*; do [ "$(readlink "$l")" = ../../vdb ] && echo "$l"; done)
[ -n "$bypath" ] || fail "no by-path link to vdb: $(ls -l /dev/disk/by-path 2>&1)"
echo "RESULT bypath $bypath"
wait_for 30 test -e /run/data-triggered || fail "the [trigger] unit did not run"
grep -q vdb /run/data-triggered || fail "trigger saw $(cat /run/data-triggered)"
wait_for 30 initctl is-active uses-vdb.service || fail "uses-vdb.service: $(initctl is-active uses-vdb.service)"
initctl is-active other-label.service >/dev/null && fail "a trigger for another label ran"
wait_for 60 test -d /sys/module/virtio_rng || fail "virtio_rng was not autoloaded for the hot-plugged rng"
echo "RESULT hotplug-vdb ok"

# Latency from a uevent to the start of the unit it triggers: the clock is
# read before writing to the device's uevent file and by the unit's
# command first thing.
i=0
while [ $i -lt @ROUNDS@ ]; do
	# The last round saw its stamp, written before its oneshot ended: a
	# uevent while the unit is still activating joins that start and runs
	# nothing (a lost round on a loaded host).
	wait_for 30 sh -c '[ "$(initctl is-active on-vdb-change.service)" = inactive ]' || fail "on-vdb-change.service: $(initctl is-active on-vdb-change.service)"
	before=$(cat /run/change-times 2>/dev/null | wc -l)
	t0=$(now)
	echo change > /sys/block/vdb/uevent
	wait_for 10 sh -c "[ \$(cat /run/change-times 2>/dev/null | wc -l) -gt $before ]" || fail "change trigger $i did not run: $(initctl status on-vdb-change.service)"
	t1=$(tail -n 1 /run/change-times)
	echo "RESULT latency-ns $((t1 - t0))"
	i=$((i + 1))
done

# The same clock around the unit's command run directly: the part of the
# latency that is the command's own start under TCG, not Vigil's.
i=0
while [ $i -lt @ROUNDS@ ]; do
	t0=$(now)
	/bin/stamp-change /run/direct-times
	t1=$(tail -n 1 /run/direct-times)
	echo "RESULT direct-ns $((t1 - t0))"
	i=$((i + 1))
done

echo READY-FOR-UNPLUG
wait_for 120 sh -c '! initctl is-active dev-vdb.device' || fail "dev-vdb.device still active"
wait_for 30 sh -c '! initctl is-active uses-vdb.service' || fail "uses-vdb.service still running after unplug"
[ -e /dev/disk/by-uuid/@UUID@ ] && fail "by-uuid link survived the unplug"
[ -e "$bypath" ] && fail "by-path link survived the unplug"
initctl is-active dev-vda.device >/dev/null || fail "dev-vda.device went with vdb"
echo "RESULT unplug-vdb ok"
`

// TestDeviceHotplugInGuest boots Vigil as PID 1 with a boot disk (vda)
// and a drive not yet plugged in: coldplug must find vda (loading
// virtio_blk, which is carried but not listed to load), a QMP device_add
// of the drive must make dev-vdb.device active, its /dev/disk/by-uuid link
// appear and a [trigger] unit run; device_del must make it inactive and
// stop the unit bound to it. A hot-plugged virtio-rng shows a module
// autoloaded for a device whose driver is not loaded.
func TestDeviceHotplugInGuest(t *testing.T) {
	skipWithoutModules(t)
	var load []string
	for _, m := range initramfs.DefaultModules() {
		if m != "virtio_blk" && m != "virtio_rng" {
			load = append(load, m)
		}
	}
	dir := t.TempDir()
	boot := filepath.Join(dir, "boot.img")
	data := filepath.Join(dir, "data.img")
	makeExt4(t, boot, ext4Disk{label: "vigil-boot"})
	makeExt4(t, data, ext4Disk{label: "vigil-data"})
	uuid := ext4UUID(t, data)
	const rounds = 20
	script := strings.NewReplacer("@UUID@", uuid, "@ROUNDS@", strconv.Itoa(rounds)).Replace(deviceGuestScript)

	units := map[string]string{
		"on-data.service": `[trigger]
uevent = { subsystem = "block", action = "add", env = { ID_FS_LABEL = "vigil-data" } }
[service]
type = "oneshot"
remain-after-exit = true
exec-start = ["/bin/sh", "-c", "ls /dev/disk/by-label/ > /run/data-seen; readlink /dev/disk/by-label/vigil-data > /run/data-triggered"]
`,
		"other-label.service": `[trigger]
uevent = { subsystem = "block", action = "add", env = { ID_FS_LABEL = "not-this-one" } }
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
		"uses-vdb.service": `[unit]
binds-to = "dev-vdb.device"
after = "dev-vdb.device"
[trigger]
uevent = { subsystem = "block", action = "add", devname = "vdb" }
[service]
exec-start = "/bin/sleep 600"
`,
		"on-vdb-change.service": `[unit]
start-limit-burst = 0
[trigger]
uevent = { subsystem = "block", action = "change", devname = "vdb" }
[service]
type = "oneshot"
exec-start = "/bin/stamp-change"
`,
	}
	files := []initramfs.File{
		{Path: "/bin/stamp-change", Data: []byte("#!/bin/sh\nawk '/now at/ {print $3; exit}' /proc/timer_list >> ${1:-/run/change-times}\n"), Mode: 0o755},
		{Path: initramfs.ModulesLoadConf, Data: []byte(strings.Join(load, "\n") + "\n"), Mode: 0o644},
	}
	afterTarget := func(ctx context.Context, vm *qemu.VM) error {
		if _, err := vm.WaitForLine(ctx, "READY-FOR-HOTPLUG"); err != nil {
			return err
		}
		if err := vm.QMP().DeviceAdd(ctx, "virtio-blk-pci", "vblk1", map[string]any{"drive": "d1"}); err != nil {
			return fmt.Errorf("device_add virtio-blk-pci: %w", err)
		}
		if err := vm.QMP().DeviceAdd(ctx, "virtio-rng-pci", "rng1", nil); err != nil {
			return fmt.Errorf("device_add virtio-rng-pci: %w", err)
		}
		if _, err := vm.WaitForLine(ctx, "READY-FOR-UNPLUG"); err != nil {
			return err
		}
		if err := vm.QMP().DeviceDel(ctx, "vblk1"); err != nil {
			return fmt.Errorf("device_del: %w", err)
		}
		// The guest checks the removal itself (RESULT unplug-vdb) and may
		// power off before QEMU's DEVICE_DELETED reaches us: nothing to
		// wait for here.
		return nil
	}
	res := bootDiskGuest(t, qemu.RunConfig{
		Image:  initramfs.Spec{UnitDirs: []string{writeUnits(t, units)}, Files: files},
		Script: script,
		Boot: qemu.Config{
			Append:       "vigil.log-level=debug",
			Disks:        []string{boot},
			HotplugDisks: []qemu.HotplugDisk{{ID: "d1", File: data}},
		},
		Timeout:     5 * time.Minute,
		AfterTarget: afterTarget,
	}, 6*time.Minute)
	wantResults(t, res, "RESULT coldplug-vda ok", "RESULT hotplug-vdb ok", "RESULT unplug-vdb ok")
	for _, series := range []struct{ key, what string }{
		{"latency-ns", "uevent -> triggered unit's command"},
		{"direct-ns", "the same command run directly"},
	} {
		var samples []time.Duration
		for _, line := range res.ScriptOutput {
			if v, ok := strings.CutPrefix(line, "RESULT "+series.key+" "); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || n <= 0 {
					t.Errorf("bad sample line %q", line)
					continue
				}
				samples = append(samples, time.Duration(n))
			}
		}
		if len(samples) != rounds {
			t.Errorf("%d %s samples, want %d", len(samples), series.key, rounds)
			continue
		}
		sort.Slice(samples, func(a, b int) bool { return samples[a] < samples[b] })
		t.Logf("%s, %d samples: min %v, median %v, max %v", series.what,
			len(samples), samples[0].Round(time.Microsecond), samples[len(samples)/2].Round(time.Microsecond), samples[len(samples)-1].Round(time.Microsecond))
	}
	coldplugRE := regexp.MustCompile(`vigil: coldplug: (\d+) devices in (\S+)`)
	if m := coldplugRE.FindStringSubmatch(res.Console); m == nil {
		t.Errorf("no coldplug line on the console")
	} else {
		t.Logf("coldplug at boot: %s devices in %s (boot: default target at uptime %v, %v after init exec)", m[1], m[2], res.TargetUptime, res.SinceExec)
	}
	if !strings.Contains(res.Console, "loaded module virtio_blk") || !strings.Contains(res.Console, "loaded module virtio_rng") {
		t.Errorf("the console does not show virtio_blk and virtio_rng autoloaded")
	}
}
