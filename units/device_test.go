package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/uevent"
	"vigil/units/api"
)

// deviceHarness is a manager with device events on, fed by hand through a
// source named like the kernel listener's.
type deviceHarness struct {
	*harness
	raw *observer.Source
}

func newDeviceHarness(t *testing.T, files map[string]string, opts DeviceOptions) *deviceHarness {
	t.Helper()
	if opts.SourceName == "" {
		opts.SourceName = "test-uevent"
	}
	h := newHarnessWith(t, files, func(o *Options) { o.Devices = &opts })
	t.Cleanup(h.m.StopDevices)
	return &deviceHarness{harness: h, raw: h.loop.NewSource(opts.SourceName, 256)}
}

// post sends a synthetic kernel uevent through the real parser, as the
// listener would.
func (h *deviceHarness) post(action, devpath string, env ...string) {
	h.t.Helper()
	msg := action + "@" + devpath + "\x00ACTION=" + action + "\x00DEVPATH=" + devpath + "\x00" + strings.Join(env, "\x00")
	u, err := uevent.Parse([]byte(msg))
	if err != nil {
		h.t.Fatalf("synthetic uevent: %v", err)
	}
	if !h.raw.Post(uevent.Event(u)) {
		h.t.Fatal("uevent queue full")
	}
}

// waitProcessed waits until the device pipeline has posted n events.
func (h *deviceHarness) waitProcessed(n uint64) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st DeviceStats
		h.do(func() { st = h.m.DeviceStats() })
		if st.Processed >= n {
			// One more loop turn, so the device event itself is dispatched.
			time.Sleep(20 * time.Millisecond)
			h.do(func() {})
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("device pipeline processed %d of %d events\nlog:\n%s", st.Processed, n, h.logText())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const vdbPath = "/devices/pci0000:00/0000:00:05.0/virtio3/block/vdb"

func vdbEnv() []string {
	return []string{"SUBSYSTEM=block", "DEVNAME=vdb", "DEVTYPE=disk", "MAJOR=254", "MINOR=16", "SEQNUM=1200"}
}

func TestDeviceUnitsAppearAndDisappear(t *testing.T) {
	h := newDeviceHarness(t, map[string]string{
		"uses-vdb.service": `[unit]
binds-to = "dev-vdb.device"
after = "dev-vdb.device"
[service]
exec-start = "/bin/sleep 60"
`,
	}, DeviceOptions{})
	if a, _ := h.state("dev-vdb.device"); a != "" {
		t.Fatalf("dev-vdb.device exists before its device: %s", a)
	}
	h.post("add", vdbPath, vdbEnv()...)
	h.post("add", "/devices/virtual/net/veth9", "SUBSYSTEM=net", "INTERFACE=veth9", "IFINDEX=9")
	// A subsystem without eager units: named later, it is plugged at once.
	h.post("add", "/devices/virtual/misc/fuse", "SUBSYSTEM=misc", "DEVNAME=fuse", "MAJOR=10", "MINOR=229")
	h.waitProcessed(3)
	for _, name := range []string{"dev-vdb.device", "sys-devices-pci0000:00-0000:00:05.0-virtio3-block-vdb.device",
		"sys-subsystem-net-devices-veth9.device", "sys-devices-virtual-net-veth9.device"} {
		if a, s := h.state(name); a != "active" || s != "plugged" {
			t.Errorf("%s: %s/%s, want active/plugged", name, a, s)
		}
	}
	if a, _ := h.state("dev-fuse.device"); a != "" {
		t.Errorf("a misc device got a unit before anything named it: %s", a)
	}
	if r, why := h.start("dev-fuse.device"); r != "done" {
		t.Errorf("start dev-fuse.device: %s %s", r, why)
	}
	if a, s := h.state("dev-fuse.device"); a != "active" || s != "plugged" {
		t.Errorf("dev-fuse.device named after it appeared: %s/%s", a, s)
	}
	if p := h.prop("dev-vdb.device", "SysFSPath"); p != "/sys"+vdbPath {
		t.Errorf("SysFSPath = %q", p)
	}

	if r, why := h.start("uses-vdb.service"); r != "done" {
		t.Fatalf("start uses-vdb.service: %s %s", r, why)
	}
	// Stopping a plugged device changes nothing: only the kernel unplugs.
	if r, _ := h.stop("sys-devices-virtual-net-veth9.device"); r != "done" {
		t.Errorf("stop of a plugged device: %s", r)
	}
	if a, _ := h.state("sys-devices-virtual-net-veth9.device"); a != "active" {
		t.Errorf("a stop job unplugged a device: %s", a)
	}

	// A rename: the old names go, the new ones come.
	h.post("move", "/devices/virtual/net/veth10", "SUBSYSTEM=net", "INTERFACE=veth10", "IFINDEX=9", "DEVPATH_OLD=/devices/virtual/net/veth9")
	h.waitProcessed(4)
	if a, _ := h.state("sys-subsystem-net-devices-veth10.device"); a != "active" {
		t.Errorf("renamed interface's unit: %s", a)
	}
	if a, _ := h.state("sys-subsystem-net-devices-veth9.device"); a != "inactive" {
		t.Errorf("old name of a renamed interface: %s", a)
	}

	h.post("remove", vdbPath, vdbEnv()...)
	h.waitProcessed(5)
	for _, name := range []string{"dev-vdb.device", "sys-devices-pci0000:00-0000:00:05.0-virtio3-block-vdb.device"} {
		if a, s := h.state(name); a != "inactive" || s != "dead" {
			t.Errorf("%s after remove: %s/%s", name, a, s)
		}
	}
	h.waitState("uses-vdb.service", "inactive", 10*time.Second)
	if a, _ := h.state("sys-subsystem-net-devices-veth10.device"); a != "active" {
		t.Errorf("removing vdb unplugged veth10: %s", a)
	}
}

func TestDeviceStartWaitsForTheDevice(t *testing.T) {
	h := newDeviceHarness(t, map[string]string{
		"needs-vdb.service": `[unit]
requires = "dev-vdb.device"
after = "dev-vdb.device"
[service]
exec-start = "/bin/sleep 60"
`,
		"needs-vdc.service": `[unit]
requires = "dev-vdc.device"
after = "dev-vdc.device"
[service]
exec-start = "/bin/sleep 60"
`,
		// job-timeout of a device unit comes from its file (a drop-in
		// would do too); without one the option's default holds.
		"dev-vdc.device": `[unit]
job-timeout = "300ms"
`,
	}, DeviceOptions{JobTimeout: time.Minute})
	type outcome struct{ result, reason string }
	ch := make(chan outcome, 1)
	h.do(func() {
		j, err := h.m.Enqueue("needs-vdb.service", "start", "")
		if err != nil {
			t.Fatal(err)
		}
		j.OnDone(func(j *Job) { ch <- outcome{j.Result, j.Reason} })
	})
	time.Sleep(100 * time.Millisecond)
	if a, s := h.state("dev-vdb.device"); a != "activating" || s != "waiting" {
		t.Errorf("dev-vdb.device while waited for: %s/%s", a, s)
	}
	if a, _ := h.state("needs-vdb.service"); a != "inactive" {
		t.Errorf("needs-vdb.service started before its device: %s", a)
	}
	h.post("add", vdbPath, vdbEnv()...)
	select {
	case o := <-ch:
		if o.result != "done" {
			t.Errorf("needs-vdb.service: %s %s", o.result, o.reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("needs-vdb.service did not start after its device appeared\n%s", h.logText())
	}
	if a, _ := h.state("needs-vdb.service"); a != "active" {
		t.Errorf("needs-vdb.service: %s", a)
	}

	begin := time.Now()
	r, why := h.start("needs-vdc.service")
	if r != "dependency" || !strings.Contains(why, "dev-vdc.device") {
		t.Errorf("needs-vdc.service without its device: %s %q", r, why)
	}
	// Far below the option's minute, far above 300ms on a loaded machine.
	if took := time.Since(begin); took > 30*time.Second {
		t.Errorf("the device's own job-timeout (300ms) was not used: took %v", took)
	}
	if a, s := h.state("dev-vdc.device"); a != "inactive" || s != "dead" {
		t.Errorf("dev-vdc.device after its job timed out: %s/%s", a, s)
	}
}

// makeExt4 builds an ext4 image with a label, as mkfs does on real disks.
func makeExt4(t testing.TB, path, label string) string {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mkfs, "-q", "-F", "-L", label, path, "4M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err = exec.Command("blkid", "-s", "UUID", "-o", "value", path).Output()
	if err != nil {
		t.Skipf("blkid: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestUeventTriggerStartsMatchingUnits(t *testing.T) {
	devRoot := t.TempDir()
	uuid := makeExt4(t, filepath.Join(devRoot, "dev/vdb"), "vigil-data")
	makeExt4(t, filepath.Join(devRoot, "dev/vdc"), "other")
	h := newDeviceHarness(t, map[string]string{
		"on-data.service": `[trigger]
uevent = { subsystem = "block", action = "add", env = { ID_FS_LABEL = "vigil-data" } }
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
		"on-any-net.target": `[trigger]
uevent = [{ subsystem = "net", action = "add", devname = "nothing-matches" }, { subsystem = "net", env = { INTERFACE = "veth*" } }]
`,
	}, DeviceOptions{ManageNodes: true, DevRoot: devRoot})

	h.post("add", "/devices/virtual/block/vdc", "SUBSYSTEM=block", "DEVNAME=vdc", "DEVTYPE=disk", "MAJOR=254", "MINOR=32")
	h.post("change", "/devices/virtual/block/vdb", "SUBSYSTEM=block", "DEVNAME=vdb", "DEVTYPE=disk", "MAJOR=254", "MINOR=16")
	h.waitProcessed(2)
	if a, _ := h.state("on-data.service"); a != "inactive" {
		t.Errorf("on-data.service started by a non-matching event: %s", a)
	}
	h.post("add", "/devices/virtual/block/vdb", "SUBSYSTEM=block", "DEVNAME=vdb", "DEVTYPE=disk", "MAJOR=254", "MINOR=16")
	h.waitState("on-data.service", "active", 10*time.Second)

	link := filepath.Join(devRoot, "dev/disk/by-uuid", uuid)
	if target, err := os.Readlink(link); err != nil || target != "../../vdb" {
		t.Errorf("by-uuid link: %q, %v", target, err)
	}
	if target, err := os.Readlink(filepath.Join(devRoot, "dev/disk/by-label/vigil-data")); err != nil || target != "../../vdb" {
		t.Errorf("by-label link: %q, %v", target, err)
	}
	// The links' device units appear with the device (DEVLINKS).
	byLabel := `dev-disk-by\x2dlabel-vigil\x2ddata.device`
	if a, _ := h.state(byLabel); a != "active" {
		t.Errorf("%s: %s", byLabel, a)
	}

	h.post("add", "/devices/virtual/net/veth7", "SUBSYSTEM=net", "INTERFACE=veth7")
	h.waitState("on-any-net.target", "active", 10*time.Second)

	h.post("remove", "/devices/virtual/block/vdb", "SUBSYSTEM=block", "DEVNAME=vdb", "DEVTYPE=disk", "MAJOR=254", "MINOR=16")
	h.waitState(byLabel, "inactive", 10*time.Second)
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("by-uuid link survived the device's removal: %v", err)
	}
	var names []string
	h.do(func() {
		for _, o := range h.loop.Observers() {
			if strings.HasPrefix(o.Name, "trigger ") {
				names = append(names, o.Name+" "+o.Filter)
			}
		}
	})
	if len(names) != 3 {
		t.Errorf("trigger observers: %q", names)
	}
}

// TestDeviceUnitsFromTheKernel uses the real uevent socket and the real
// /sys: coldplug finds lo, and a "change" written to its uevent file comes
// back through the kernel.
func TestDeviceUnitsFromTheKernel(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to write to /sys")
	}
	if _, err := os.Stat("/sys/class/net/lo/uevent"); err != nil {
		t.Skip("no sysfs")
	}
	h := newDeviceHarness(t, map[string]string{
		"on-lo-change.service": `[trigger]
uevent = { subsystem = "net", action = "change", env = { INTERFACE = "lo" } }
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
	}, DeviceOptions{Listen: true, Coldplug: true, SourceName: "uevent"})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st DeviceStats
		h.do(func() { st = h.m.DeviceStats() })
		if !st.ColdplugRunning {
			if st.Coldplugged < 10 {
				t.Errorf("coldplug saw %d devices", st.Coldplugged)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("coldplug did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.waitState("sys-subsystem-net-devices-lo.device", "active", 10*time.Second)
	if a, _ := h.state("on-lo-change.service"); a != "inactive" {
		t.Errorf("coldplug's add started a change trigger: %s", a)
	}
	if err := os.WriteFile("/sys/class/net/lo/uevent", []byte("change"), 0o200); err != nil {
		t.Fatal(err)
	}
	h.waitState("on-lo-change.service", "active", 10*time.Second)
	var st DeviceStats
	h.do(func() { st = h.m.DeviceStats() })
	if st.Listener.Received == 0 {
		t.Errorf("the kernel socket received nothing: %+v", st)
	}
}

// TestIsolateLeavesDevicesAndWhatIsBoundToThem: isolating a target does not
// stop device units (as in systemd), so a unit bound to a device and
// ignoring isolation itself (a mount) stays up; before, the isolate's stop
// of the device went on to everything bound to it.
func TestIsolateLeavesDevicesAndWhatIsBoundToThem(t *testing.T) {
	h := newDeviceHarness(t, map[string]string{
		"on-vdb.service": `[unit]
binds-to = "dev-vdb.device"
after = "dev-vdb.device"
ignore-on-isolate = true
[service]
exec-start = "/bin/sleep 60"
`,
		"plain.service": `[service]
exec-start = "/bin/sleep 60"
`,
		"other.target": `[unit]
allow-isolate = true
requires = "sysinit.target"
after = "sysinit.target"
`,
	}, DeviceOptions{JobTimeout: 5 * time.Second})
	h.post("add", vdbPath, vdbEnv()...)
	h.waitProcessed(1)
	for _, name := range []string{"on-vdb.service", "plain.service"} {
		if r, why := h.start(name); r != "done" {
			t.Fatalf("start %s: %s %s", name, r, why)
		}
	}
	if r, why := h.job("other.target", api.JobStart, api.ModeIsolate); r != "done" {
		t.Fatalf("isolate other.target: %s %s\n%s", r, why, h.logText())
	}
	if a, _ := h.state("plain.service"); a != "inactive" {
		t.Errorf("plain.service after the isolate: %s (isolating stops what the target does not pull in)", a)
	}
	if a, _ := h.state("dev-vdb.device"); a != "active" {
		t.Errorf("dev-vdb.device after the isolate: %s", a)
	}
	if a, _ := h.state("on-vdb.service"); a != "active" {
		t.Errorf("on-vdb.service after the isolate: %s, want active: the device it is bound to was stopped\n%s", a, h.logText())
	}
}
