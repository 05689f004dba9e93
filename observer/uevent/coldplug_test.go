package uevent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestColdplugFakeTree(t *testing.T) {
	var got []*Uevent
	n, err := Coldplug("testdata/sys", func(u *Uevent) { got = append(got, u) })
	if n != len(got) || n != 5 {
		t.Fatalf("Coldplug emitted %d (counted %d), want 5: %+v", len(got), n, got)
	}
	if err == nil || !strings.Contains(err.Error(), "broken/dev0") {
		t.Errorf("the broken device's error is missing: %v", err)
	}
	byPath := map[string]*Uevent{}
	var order []string
	for _, u := range got {
		byPath[u.DevPath] = u
		order = append(order, u.DevPath)
		if u.Action != "add" || u.Env["SYNTH_UUID"] != "0" || u.Seqnum != 0 || u.Env["ACTION"] != "add" {
			t.Errorf("not a synthetic add: %+v", u)
		}
	}
	const pci = "/devices/pci0000_00/0000_00_02.0"
	vda := byPath[pci+"/virtio1/block/vda"]
	if vda == nil || vda.Subsystem != "block" || vda.DevName != "vda" || vda.Major != 254 || vda.DevType != "disk" {
		t.Errorf("vda: %+v", vda)
	}
	if lo := byPath["/devices/virtual/net/lo"]; lo == nil || lo.Subsystem != "net" || lo.Env["INTERFACE"] != "lo" {
		t.Errorf("lo: %+v", lo)
	}
	if v := byPath[pci+"/virtio1"]; v == nil || v.Modalias != "virtio:d00000002v00001AF4" || v.Subsystem != "virtio" {
		t.Errorf("virtio1: %+v", v)
	}
	// Parents come before their children.
	index := map[string]int{}
	for i, p := range order {
		index[p] = i
	}
	for p, i := range index {
		if parent, ok := index[filepath.Dir(p)]; ok && parent > i {
			t.Errorf("%s emitted before its parent", p)
		}
	}
	if _, err := Coldplug(t.TempDir(), func(*Uevent) {}); err == nil {
		t.Error("a tree without devices/ gave no error")
	}
}

// The host's /sys: every device Coldplug reports must be a real device
// directory, and the ones this machine is known to have must be there.
func TestColdplugHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/virtual/net/lo/uevent"); err != nil {
		t.Skip("no sysfs here")
	}
	seen := map[string]*Uevent{}
	n, err := Coldplug("/sys", func(u *Uevent) { seen[u.DevPath] = u })
	if err != nil {
		t.Errorf("coldplug of the host: %v", err)
	}
	if n != len(seen) || n < 10 {
		t.Fatalf("%d events for %d devices", n, len(seen))
	}
	if lo := seen["/devices/virtual/net/lo"]; lo == nil || lo.Subsystem != "net" || lo.Env["IFINDEX"] != "1" {
		t.Errorf("lo: %+v", lo)
	}
	blocks, _ := filepath.Glob("/sys/block/*")
	if len(blocks) == 0 {
		t.Fatal("no block devices on the host")
	}
	for _, b := range blocks {
		real, err := filepath.EvalSymlinks(b)
		if err != nil {
			t.Fatal(err)
		}
		devpath := strings.TrimPrefix(real, "/sys")
		u := seen[devpath]
		if u == nil {
			t.Errorf("block device %s (%s) not coldplugged", b, devpath)
			continue
		}
		dev, _ := os.ReadFile(b + "/dev")
		if u.Subsystem != "block" || u.DevName != filepath.Base(b) || !u.HasDevNum ||
			strings.TrimSpace(string(dev)) != fmt.Sprintf("%d:%d", u.Major, u.Minor) {
			t.Errorf("%s: %+v (dev %q)", b, u, dev)
		}
	}
	for p := range seen {
		if _, err := os.Stat("/sys" + p + "/uevent"); err != nil {
			t.Errorf("coldplugged %s is not a device: %v", p, err)
		}
	}
}

// Coldplug's names match what systemd-escape makes of the same paths.
func TestUnitNamesAgainstSystemdEscape(t *testing.T) {
	escapeBin, err := exec.LookPath("systemd-escape")
	if err != nil {
		t.Skip("systemd-escape not installed")
	}
	var paths []string
	Coldplug("/sys", func(u *Uevent) {
		paths = append(paths, "/sys"+u.DevPath)
		if n := u.DevNode(); n != "" {
			paths = append(paths, n)
		}
	})
	paths = append(paths, "/dev/disk/by-label/my disk", "/dev/disk/by-uuid/1234-ABCD", "/dev/.hidden", "/dev/a\\b", "/sys/subsystem/net/devices/eth-0", "/dev/über")
	out, err := exec.Command(escapeBin, append([]string{"--path", "--suffix=device"}, paths...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))
	if len(want) != len(paths) {
		t.Fatalf("systemd-escape gave %d names for %d paths", len(want), len(paths))
	}
	for i, p := range paths {
		if got, ok := DeviceUnitName(p); !ok || got != want[i] {
			t.Errorf("DeviceUnitName(%q) = %q, %v; systemd-escape says %q", p, got, ok, want[i])
		}
	}
}

func TestUnitNames(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"kernel-add-pci-02.0_virtio1_block_vda.raw", []string{
			`sys-devices-pci0000:00-0000:00:02.0-virtio1-block-vda.device`, "dev-vda.device"}},
		{"kernel-add-virtual_net_lo.raw", []string{"sys-devices-virtual-net-lo.device", "sys-subsystem-net-devices-lo.device"}},
		{"kernel-add-virtual_tty_tty1.raw", []string{"sys-devices-virtual-tty-tty1.device", "dev-tty1.device"}},
	}
	for _, tt := range tests {
		u, err := Parse(readFixture(t, "testdata/captures/"+tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := UnitNames(u); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: %q, want %q", tt.file, got, tt.want)
		}
	}
	u, _ := Parse(libudevMessage("ACTION=add", "DEVPATH=/devices/virtual/block/loop1", "SUBSYSTEM=block",
		"DEVNAME=/dev/loop1", "DEVLINKS=/dev/disk/by-uuid/ab-cd /dev/disk/by-label/x\\x20y"))
	want := []string{"sys-devices-virtual-block-loop1.device", "dev-loop1.device",
		`dev-disk-by\x2duuid-ab\x2dcd.device`, `dev-disk-by\x2dlabel-x\x5cx20y.device`}
	if got := UnitNames(u); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("udev event: %q, want %q", got, want)
	}
	long := &Uevent{DevPath: "/devices/" + strings.Repeat("x", 300), Env: map[string]string{}}
	if got := UnitNames(long); len(got) != 0 {
		t.Errorf("over-long names kept: %q", got)
	}
}

func BenchmarkColdplugHost(b *testing.B) {
	if _, err := os.Stat("/sys/devices"); err != nil {
		b.Skip("no sysfs")
	}
	n := 0
	start := time.Now()
	for b.Loop() {
		n, _ = Coldplug("/sys", func(*Uevent) {})
	}
	b.ReportMetric(float64(n), "devices")
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N)/float64(max(n, 1)), "µs/device")
}
