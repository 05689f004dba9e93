package pid1

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// requireHostTool finds a host program a boot test needs; it is missing
// only where the boot tests would be skipped anyway, so with
// VIGIL_REQUIRE_VM set that is a failure.
func requireHostTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_VM") != "" {
			t.Fatalf("%s not installed: %v", name, err)
		}
		t.Skipf("%s not installed (e2fsprogs): %v", name, err)
	}
	return path
}

// newExt4Image makes an empty ext4 file system in a file on the host.
func newExt4Image(t *testing.T) string {
	t.Helper()
	mkfs := requireHostTool(t, "mkfs.ext4")
	disk := filepath.Join(t.TempDir(), "log.ext4")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 32<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", "vigil-log", disk).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return disk
}

// mountLogDisk waits for /dev/vda (virtio_blk probes it while the boot
// goes on) and mounts it on /mnt/log. It is a file rather than a unit's
// command line because the unit would expand $ itself.
const mountLogDisk = `#!/bin/sh
mkdir -p /mnt/log
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
exec mount -t ext4 /dev/vda /mnt/log
`

// stoppingService is a long-running service whose exec-stop appends its
// name to the log on the disk; it is ordered after the units in after.
// exec-stop is an array of word arrays: a flat array would be a list of
// command lines.
func stoppingService(name string, after ...string) string {
	deps := `"log-disk.service"`
	for _, a := range after {
		deps += `, "` + a + `"`
	}
	return `[unit]
description = "Stop-order witness ` + name + `"
requires = ["log-disk.service"]
after = [` + deps + `]
[service]
exec-start = "/bin/sleep 100000"
exec-stop = [["/bin/sh", "-c", "echo ` + name + ` >> /mnt/log/stop.log"]]
`
}

// TestPoweroffStopsUnitsInReverseOrderInGuest boots with services ordered
// a -> b -> c that log their stop to an ext4 disk, powers off with
// busybox's poweroff (SIGUSR2 to PID 1), and reads the disk on the host:
// the stops came in the order c, b, a, all three of them, and the file
// system was unmounted cleanly.
func TestPoweroffStopsUnitsInReverseOrderInGuest(t *testing.T) {
	t.Parallel()
	skipWithoutVM(t)
	debugfs := requireHostTool(t, "debugfs")
	e2fsck := requireHostTool(t, "e2fsck")
	disk := newExt4Image(t)
	units := map[string]string{
		"log-disk.service": `[unit]
description = "Mount the stop-order log disk"
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/etc/vigil/test/mount-log-disk"
`,
		"a.service": stoppingService("a"),
		"b.service": stoppingService("b", "a.service"),
		"c.service": stoppingService("c", "b.service"),
	}
	for _, name := range []string{"a", "b", "c"} {
		units["multi-user.target.wants/"+name+".service.link"] = "../" + name + ".service"
	}
	script := `
set -e
initctl is-active log-disk.service a.service b.service c.service
grep -q ' /mnt/log ext4 ' /proc/mounts
test ! -e /mnt/log/stop.log
echo powering-off
busybox poweroff
# The shutdown stops this script; it must not end on its own first. exec,
# not a fork: a process forked while the stop signals the unit's cgroup can
# escape the SIGTERM (units/ lists the group once), and the stop then waits
# out its 90 s timeout.
exec sleep 600
`
	res := mustBootGuest(t, guestRun{
		units:            units,
		files:            []initramfs.File{{Path: "/etc/vigil/test/mount-log-disk", Data: []byte(mountLogDisk), Mode: 0o755}},
		script:           script,
		disks:            []string{disk},
		externalShutdown: true,
	})
	out := strings.Join(res.ScriptOutput, "\n")
	if !strings.Contains(out, "active\nactive\nactive\nactive\npowering-off") {
		t.Fatalf("the checks before poweroff failed:\n%s\nconsole:\n%s", out, res.Tail)
	}
	if res.ShutdownAction != "poweroff" || !res.Clean {
		t.Errorf("shutdown %q clean=%v (%s)", res.ShutdownAction, res.Clean, res.UncleanReason)
	}
	log, err := exec.Command(debugfs, "-R", "cat /stop.log", disk).Output()
	if err != nil {
		t.Fatalf("debugfs cat /stop.log: %v", err)
	}
	if got := strings.Fields(string(log)); strings.Join(got, " ") != "c b a" {
		t.Errorf("stop order on the disk %q, want c b a\nconsole:\n%s", got, res.Tail)
	}
	if out, err := exec.Command(e2fsck, "-fn", disk).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn after the guest's shutdown: %v\n%s", err, out)
	}
}

// TestBusyboxRebootInGuest: busybox's reboot sends SIGTERM to PID 1,
// which Vigil takes as an ordered reboot (QEMU exits: -no-reboot). The
// boot also has vigil.show-status=no: no status lines on the console.
func TestBusyboxRebootInGuest(t *testing.T) {
	t.Parallel()
	res := mustBootGuest(t, guestRun{
		script:           "echo rebooting\nbusybox reboot\nexec sleep 600\n", // exec: see the poweroff test
		append:           "vigil.show-status=no",
		externalShutdown: true,
	})
	if strings.Contains(res.Console, "Started vigil-vm test script") || strings.Contains(res.Console, "Reached target") {
		t.Errorf("status lines despite vigil.show-status=no:\n%s", res.Tail)
	}
	if got := strings.Join(res.ScriptOutput, "\n"); !strings.Contains(got, "rebooting") {
		t.Errorf("script output %q", got)
	}
	if res.ShutdownAction != "reboot" || !res.Clean {
		t.Errorf("shutdown %q clean=%v (%s)\n%s", res.ShutdownAction, res.Clean, res.UncleanReason, res.Tail)
	}
}

// TestCtrlAltDeleteOverQMPRebootsInGuest presses Ctrl-Alt-Del on the
// guest's keyboard over QMP once the default target is reached: the
// kernel sends SIGINT to PID 1 (Vigil turned off the instant reboot),
// and Vigil reboots in order.
func TestCtrlAltDeleteOverQMPRebootsInGuest(t *testing.T) {
	t.Parallel()
	res := mustBootGuest(t, guestRun{
		script:           "echo waiting-for-ctrl-alt-del\nsleep 600\n",
		externalShutdown: true,
		afterTarget: func(ctx context.Context, vm *qemu.VM) error {
			// Not before the script runs: the harness wants it to start.
			if _, err := vm.WaitForLine(ctx, "waiting-for-ctrl-alt-del"); err != nil {
				return err
			}
			return vm.QMP().SendKey(ctx, "ctrl-alt-delete")
		},
	})
	if !strings.Contains(res.Console, "vigil: Ctrl-Alt-Del: rebooting") {
		t.Errorf("console lacks Vigil's Ctrl-Alt-Del line:\n%s", res.Tail)
	}
	if !strings.Contains(res.Console, "vigil: shutdown complete: reboot clean") {
		t.Errorf("shutdown %q clean=%v (%s)\n%s", res.ShutdownAction, res.Clean, res.UncleanReason, res.Tail)
	}
}

// TestFailingDefaultTargetEntersEmergencyInGuest boots a default target
// that requires a failing oneshot: Vigil says so, isolates
// emergency.target, and emergency.service runs a shell on the console.
// The script (its unit survives the isolate) checks that and then
// powers off from emergency mode.
func TestFailingDefaultTargetEntersEmergencyInGuest(t *testing.T) {
	t.Parallel()
	units := map[string]string{
		"fails.target": `[unit]
description = "A target that cannot be reached"
requires = ["failing.service"]
after = ["failing.service"]
allow-isolate = true
`,
		"failing.service": `[unit]
description = "A oneshot that fails"
[service]
type = "oneshot"
exec-start = "/bin/false"
`,
		// An interactive ash ignores SIGTERM, so without SIGHUP stopping
		// the emergency shell waits out its 90 s stop timeout. The
		// built-in emergency.service should say this itself (reported
		// to the lead); until then the test adds it, and checks below
		// that the shutdown does not wait for the shell.
		"emergency.service.d/sighup.toml": "[service]\nsend-sighup = true\n",
	}
	// One line per finding: the emergency shell's prompt goes to the same
	// console at a moment of its own, between any two writes of the
	// script's programs (initctl writes a line per unit), never inside
	// one echo.
	script := `
echo "states: $(initctl is-active emergency.target emergency.service | tr '\n' ' ')$(initctl is-failed failing.service)"
# emergency.service's shell: /bin/sh -l with the console as its stdin.
for p in /proc/[0-9]*; do
	if [ "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" = "/bin/sh -l " ]; then
		echo "emergency-shell-stdin=$(readlink $p/fd/0)"
	fi
done
`
	res, err := bootGuest(t, guestRun{
		units:          units,
		script:         script,
		append:         "vigil.unit=fails.target",
		allowEmergency: true,
	})
	if err != nil {
		t.Fatalf("guest run: %v", err)
	}
	for _, want := range []string{"vigil: default target fails.target failed", "vigil: entering emergency mode", "Reached target Emergency Mode"} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q:\n%s", want, res.Tail)
		}
	}
	if !res.Emergency || res.DefaultTarget != "" {
		t.Errorf("emergency=%v, default target %q reached", res.Emergency, res.DefaultTarget)
	}
	out := strings.Join(res.ScriptOutput, "\n")
	for _, want := range []string{"states: active active failed", "emergency-shell-stdin=/dev/console"} {
		if !strings.Contains(out, want) {
			t.Errorf("script output lacks %q:\n%s", want, out)
		}
	}
	// The shell's 90 s stop timeout would show in the poweroff's wall time
	// (no "stop job is running" line: the shell has the console, and
	// status lines stay off it meanwhile, as systemd keeps them).
	if res.ScriptEnded == 0 || res.Elapsed-res.ScriptEnded > 60*time.Second {
		t.Errorf("the shutdown waited for the emergency shell: script ended at %v, QEMU at %v:\n%s", res.ScriptEnded, res.Elapsed, res.Tail)
	}
	if res.ShutdownAction != "poweroff" || !res.Clean {
		t.Errorf("shutdown from emergency mode %q clean=%v (%s)", res.ShutdownAction, res.Clean, res.UncleanReason)
	}
}
