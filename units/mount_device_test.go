package units

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer/autofs"
	"vigil/units/api"
)

// Tests of a mount unit whose device does not appear (mount.go,
// failMountsWithoutDevice): the unit ends failed with result
// device-timeout and a status naming the device.

const vdzPath = "/devices/pci0000:00/0000:00:09.0/virtio7/block/vdz"

func vdzEnv() []string {
	return []string{"SUBSYSTEM=block", "DEVNAME=vdz", "DEVTYPE=disk", "MAJOR=254", "MINOR=400", "SEQNUM=1300"}
}

// bindingMounts stands for the kernel's mount of a disk: it bind-mounts
// src at the target (whatever the source and type say), so the mount table
// shows a real mount and an automount's accessor finds src's files.
type bindingMounts struct {
	src   string
	mu    sync.Mutex
	calls int
}

func (b *bindingMounts) Mount(_, target, _ string, _ uintptr, _ string) error {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	return unix.Mount(b.src, target, "", unix.MS_BIND, "")
}
func (b *bindingMounts) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }
func (b *bindingMounts) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func TestMountWithoutItsDeviceFails(t *testing.T) {
	dir := t.TempDir()
	where := filepath.Join(dir, "gone")
	name := mountName(t, where)
	h := newDeviceHarness(t, map[string]string{
		name:             "[mount]\nwhat = \"/dev/vdz\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\n",
		"dev-vdz.device": "[unit]\njob-timeout = \"300ms\"\n",
	}, DeviceOptions{JobTimeout: time.Hour})
	fake := &fakeMounts{}
	h.do(func() { h.m.mounts.sys = fake })

	res, why := h.start(name)
	if res != api.ResultFailed || why != "Device /dev/vdz did not appear within 300ms" {
		t.Fatalf("start without the device: %s %q, want failed naming /dev/vdz\n%s", res, why, h.logText())
	}
	if a, sub := h.state(name); a != "failed" || sub != "failed" {
		t.Errorf("%s: %s (%s), want failed (failed)", name, a, sub)
	}
	if got := h.prop(name, "Result"); got != resultDeviceTimeout {
		t.Errorf("Result = %q, want %q", got, resultDeviceTimeout)
	}
	var st api.UnitStatus
	h.do(func() { st, _ = h.m.Status(name) })
	if st.Result != resultDeviceTimeout || !strings.Contains(st.StatusText, "/dev/vdz did not appear") {
		t.Errorf("status: result %q, text %q", st.Result, st.StatusText)
	}
	if !strings.Contains(h.logText(), "Device /dev/vdz did not appear within 300ms") {
		t.Errorf("no log line naming the device:\n%s", h.logText())
	}
	if a, _ := h.state("dev-vdz.device"); a != "inactive" {
		t.Errorf("dev-vdz.device: %s, want inactive", a)
	}
	if fake.count() != 0 {
		t.Errorf("%d mount calls without the device", fake.count())
	}

	// A failed mount starts again once its device is there.
	h.post("add", vdzPath, vdzEnv()...)
	h.waitState("dev-vdz.device", "active", 10*time.Second)
	if res, why := h.start(name); res != api.ResultDone {
		t.Fatalf("start with the device: %s %q", res, why)
	}
	if a, _ := h.state(name); a != "active" || fake.count() != 1 {
		t.Errorf("%s: %s after %d mount calls, want active after 1", name, a, fake.count())
	}
	if got := h.prop(name, "Result"); got != "success" {
		t.Errorf("Result after a good start = %q, want success", got)
	}
}

// Without a job-timeout of the device unit the mount's own timeout bounds
// the wait, not the device default (an hour here).
func TestMountDeviceWaitFallsBackToTheMountTimeout(t *testing.T) {
	dir := t.TempDir()
	where := filepath.Join(dir, "late")
	name := mountName(t, where)
	h := newDeviceHarness(t, map[string]string{
		name: "[mount]\nwhat = \"/dev/vdz\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\ntimeout = \"400ms\"\n",
	}, DeviceOptions{JobTimeout: time.Hour})
	h.do(func() { h.m.mounts.sys = &fakeMounts{} })
	res, why := h.start(name)
	if res != api.ResultFailed || why != "Device /dev/vdz did not appear within 400ms" {
		t.Fatalf("start: %s %q, want failed after the mount's 400ms", res, why)
	}
	h.waitState(name, "failed", 10*time.Second)
}

// A job on the device that ends for another reason than its timeout (a
// stop replacing the start) is not the device's absence: the mount fails
// as a dependency and stays inactive.
func TestMountDeviceJobCanceledIsNotADeviceTimeout(t *testing.T) {
	dir := t.TempDir()
	where := filepath.Join(dir, "cancel")
	name := mountName(t, where)
	h := newDeviceHarness(t, map[string]string{
		name: "[mount]\nwhat = \"/dev/vdz\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\n",
	}, DeviceOptions{JobTimeout: time.Hour})
	h.do(func() { h.m.mounts.sys = &fakeMounts{} })
	done := make(chan string, 1)
	h.do(func() {
		j, err := h.m.Enqueue(name, api.JobStart, api.ModeReplace)
		if err != nil {
			t.Fatal(err)
		}
		j.OnDone(func(j *Job) { done <- j.Result })
	})
	h.waitState("dev-vdz.device", "activating", 10*time.Second)
	h.do(func() {
		if _, err := h.m.Enqueue("dev-vdz.device", api.JobStop, api.ModeReplace); err != nil {
			t.Error(err)
		}
	})
	select {
	case r := <-done:
		if r != api.ResultDependency {
			t.Errorf("mount job: %s, want dependency", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the mount's job did not end\n%s", h.logText())
	}
	if a, _ := h.state(name); a != "inactive" {
		t.Errorf("%s: %s, want inactive", name, a)
	}
}

// TestAutomountOfMissingDeviceFailsAccessorsAndRetries: accessors of an
// automount whose mount's device is missing get an error once the device
// timeout passes (not a hang), the mount unit is failed, the automount
// keeps waiting, and the next access tries again — and succeeds once the
// device is there.
func TestAutomountOfMissingDeviceFailsAccessorsAndRetries(t *testing.T) {
	if _, err := os.Stat(autofs.ControlPath); err != nil {
		t.Skipf("no autofs: %v", err)
	}
	var where, mountUnit, autoUnit, src string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "mnt", "gone")
		src = filepath.Join(dir, "disk")
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, "known.txt"), []byte("on the disk\n"), 0o644)
		mountUnit = mountName(t, where)
		autoUnit = strings.TrimSuffix(mountUnit, ".mount") + ".automount"
		return map[string]string{
			mountUnit:        "[mount]\nwhat = \"/dev/vdz\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\n",
			"dev-vdz.device": "[unit]\njob-timeout = \"300ms\"\n",
			autoUnit:         "[automount]\nwhere = \"" + where + "\"\n",
		}
	}, func(o *Options) { o.Devices = &DeviceOptions{SourceName: "test-uevent", JobTimeout: time.Hour} })
	t.Cleanup(h.m.StopDevices)
	devices := &deviceHarness{harness: h.harness, raw: h.loop.NewSource("test-uevent", 16)}
	disk := &bindingMounts{src: src}
	h.do(func() { h.m.mounts.sys = disk })

	if res, why := h.start(autoUnit); res != api.ResultDone {
		t.Fatalf("start %s: %s (%s)\n%s", autoUnit, res, why, h.logText())
	}
	for round := 1; round <= 2; round++ {
		begin := time.Now()
		out, err := accessMount(t, "ls", where)
		if err == nil {
			t.Fatalf("round %d: ls succeeded without the device: %s", round, out)
		}
		t.Logf("round %d: accessor failed after %v: %v", round, time.Since(begin).Round(time.Millisecond), err)
		h.waitState(mountUnit, "failed", 10*time.Second)
		if got := h.prop(mountUnit, "Result"); got != resultDeviceTimeout {
			t.Errorf("round %d: mount Result = %q, want %q", round, got, resultDeviceTimeout)
		}
		if a, sub := h.state(autoUnit); a != "active" || sub != automountWaiting {
			t.Errorf("round %d: automount %s (%s), want active (waiting)", round, a, sub)
		}
		if got := h.prop(autoUnit, "FailedRequests"); got != strconv.Itoa(round) {
			t.Errorf("round %d: FailedRequests = %s", round, got)
		}
	}
	if disk.count() != 0 {
		t.Errorf("%d mount calls without the device", disk.count())
	}

	// The device arrives: the next access mounts and sees the disk.
	devices.post("add", vdzPath, vdzEnv()...)
	h.waitState("dev-vdz.device", "active", 10*time.Second)
	out, err := accessMount(t, "cat", filepath.Join(where, "known.txt"))
	if err != nil || out != "on the disk\n" {
		t.Fatalf("access with the device: %q %v\n%s", out, err, h.logText())
	}
	h.waitState(mountUnit, "active", 10*time.Second)
	if res, why := h.stop(autoUnit); res != api.ResultDone {
		t.Errorf("stop %s: %s (%s)", autoUnit, res, why)
	}
}
