package units

import (
	"slices"
	"testing"
	"time"
)

// A [trigger] uevent unit is wanted by the device units of the event that
// started it, as udev's SYSTEMD_WANTS= makes it in systemd: Wants and
// WantedBy show it, a daemon-reload keeps it, and it goes with the device.
func TestTriggeredUnitIsWantedByItsDevice(t *testing.T) {
	h := newDeviceHarness(t, map[string]string{
		"on-vdb.service": `[trigger]
uevent = { subsystem = "block", action = "add", devname = "vdb" }
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
	}, DeviceOptions{})
	wants := func(unit string) (w, wb []string) {
		h.do(func() {
			if u := h.m.Unit(unit); u != nil {
				w = u.Deps(Wants)
			}
			if u := h.m.Unit("on-vdb.service"); u != nil {
				wb = u.Deps(WantedBy)
			}
		})
		return w, wb
	}
	sysName := "sys-devices-pci0000:00-0000:00:05.0-virtio3-block-vdb.device"
	h.post("add", vdbPath, vdbEnv()...)
	h.waitProcessed(1)
	h.waitState("on-vdb.service", "active", 10*time.Second)
	for _, dev := range []string{"dev-vdb.device", sysName} {
		w, wb := wants(dev)
		if !slices.Contains(w, "on-vdb.service") || !slices.Contains(wb, dev) {
			t.Errorf("after the add: %s wants %q; on-vdb.service wanted by %q", dev, w, wb)
		}
	}
	if p := h.prop("dev-vdb.device", "Wants"); p != "" && p != "on-vdb.service" {
		t.Errorf("Wants property of dev-vdb.device: %q", p)
	}
	h.do(func() { h.m.Reload() })
	if w, _ := wants("dev-vdb.device"); !slices.Contains(w, "on-vdb.service") {
		t.Errorf("after a reload: dev-vdb.device wants %q", w)
	}
	h.post("remove", vdbPath, vdbEnv()...)
	h.waitProcessed(2)
	h.waitState("dev-vdb.device", "inactive", 10*time.Second)
	if w, wb := wants("dev-vdb.device"); slices.Contains(w, "on-vdb.service") || slices.Contains(wb, "dev-vdb.device") {
		t.Errorf("after the remove: dev-vdb.device wants %q; on-vdb.service wanted by %q", w, wb)
	}
}

// A unit that names a device in [install] wanted-by is the device unit's
// Wants (device units have no files for .wants links), and starts when the
// device appears.
func TestWantedByDeviceIsTheDevicesWants(t *testing.T) {
	h := newDeviceHarness(t, map[string]string{
		"usb.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n" +
			"[install]\nwanted-by = \"dev-vdb.device\"\n",
	}, DeviceOptions{})
	h.post("add", vdbPath, vdbEnv()...)
	h.waitProcessed(1)
	h.waitState("usb.service", "active", 10*time.Second)
	var w, wb []string
	h.do(func() {
		w = h.m.Unit("dev-vdb.device").Deps(Wants)
		wb = h.m.Unit("usb.service").Deps(WantedBy)
	})
	if !slices.Contains(w, "usb.service") || !slices.Contains(wb, "dev-vdb.device") {
		t.Errorf("dev-vdb.device wants %q; usb.service wanted by %q", w, wb)
	}
}
