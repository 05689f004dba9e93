package devnode

import "testing"

func TestPathID(t *testing.T) {
	for _, c := range []struct {
		devpath string
		env     map[string]string
		want    string
	}{
		{"/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", nil, "virtio-pci-0000:00:02.0"},
		{"/devices/pci0000:00/0000:00:04.0/virtio3/block/vdb/vdb1", map[string]string{"DEVTYPE": "partition", "PARTN": "1"}, "virtio-pci-0000:00:04.0-part1"},
		{"/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", nil, "pci-0000:00:1f.2-scsi-0:0:0"},
		{"/devices/pci0000:00/0000:00:1d.0/0000:01:00.0/nvme/nvme0/nvme0n1", nil, "pci-0000:01:00.0"},
		{"/devices/virtual/block/loop0", nil, ""},
		{"/devices/virtual/block/zram0", nil, ""},
		{"", nil, ""},
	} {
		if got := PathID(c.devpath, c.env); got != c.want {
			t.Errorf("PathID(%q) = %q, want %q", c.devpath, got, c.want)
		}
	}
	links := PathLinks("/dev/vda", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", nil)
	if len(links) != 1 || links[0].Path != "/dev/disk/by-path/virtio-pci-0000:00:02.0" || links[0].Target != "/dev/vda" {
		t.Errorf("PathLinks: %+v", links)
	}
}

func FuzzPathID(f *testing.F) {
	f.Add("/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "partition", "1")
	f.Fuzz(func(t *testing.T, devpath, devtype, partn string) {
		PathID(devpath, map[string]string{"DEVTYPE": devtype, "PARTN": partn})
	})
}
