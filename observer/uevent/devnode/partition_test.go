package devnode

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vigil/observer/uevent/parttable"
)

// TestProbePartition reads the GPT of a disk image standing for /dev/vda
// in a temporary tree and checks the links and environment of vda2, then
// that Apply and Prune handle the by-part* directories.
func TestProbePartition(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev-root")
	const diskPath = "/devices/pci0000:00/0000:00:04.0/virtio1/block/vda"
	if err := os.MkdirAll(filepath.Join(sys, diskPath, "vda2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, diskPath, "uevent"), []byte("MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dev, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := os.Create(filepath.Join(dev, "dev", "vda"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	if err := img.Truncate(size); err != nil {
		t.Fatal(err)
	}
	err = parttable.WriteGPT(img, size, "8d1c7a2e-4b3f-4e5d-9a1b-2c3d4e5f6a7b", []parttable.GPTEntry{
		{Type: parttable.LinuxFilesystemGUID, UUID: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", Name: "boot", Start: 2048, Sectors: 1024},
		{Type: parttable.LinuxFilesystemGUID, UUID: "F0E1D2C3-B4A5-4968-8776-655443322110", Name: "my data", Start: 4096, Sectors: 2048},
	})
	img.Close()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DEVTYPE": "partition", "PARTN": "2"}
	links, err := ProbePartition(sys, dev, "/dev/vda2", diskPath+"/vda2", env)
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{
		{Path: "/dev/disk/by-partuuid/f0e1d2c3-b4a5-4968-8776-655443322110", Target: "/dev/vda2"},
		{Path: `/dev/disk/by-partlabel/my\x20data`, Target: "/dev/vda2"},
	}
	if !slices.Equal(links, want) {
		t.Fatalf("links = %v, want %v", links, want)
	}
	for k, v := range map[string]string{"ID_PART_TABLE_TYPE": "gpt", "ID_PART_ENTRY_NUMBER": "2",
		"ID_PART_ENTRY_UUID": "f0e1d2c3-b4a5-4968-8776-655443322110", "ID_PART_ENTRY_NAME": `my\x20data`,
		"ID_PART_TABLE_UUID": "8d1c7a2e-4b3f-4e5d-9a1b-2c3d4e5f6a7b", "ID_PART_ENTRY_TYPE": parttable.LinuxFilesystemGUID} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	// Apply makes them; Prune after a "remove" takes them away.
	if err := Apply(root, links); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(root, "dev/disk/by-partuuid/f0e1d2c3-b4a5-4968-8776-655443322110"))
	if err != nil || target != "../../vda2" {
		t.Fatalf("by-partuuid link -> %q, %v", target, err)
	}
	if err := Prune(root, "/dev/vda2", nil); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if _, err := os.Lstat(filepath.Join(root, l.Path)); !os.IsNotExist(err) {
			t.Errorf("%s left after prune: %v", l.Path, err)
		}
	}
	// A partition number not in the table, a whole disk and a disk
	// without a table give nothing.
	for _, env := range []map[string]string{{"DEVTYPE": "partition", "PARTN": "3"}, {"DEVTYPE": "disk"}} {
		if links, err := ProbePartition(sys, dev, "/dev/vda3", diskPath+"/vda3", env); err != nil || links != nil {
			t.Errorf("%v: links %v, err %v", env, links, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dev, "dev", "vda"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if links, err := ProbePartition(sys, dev, "/dev/vda2", diskPath+"/vda2", map[string]string{"DEVTYPE": "partition", "PARTN": "2"}); err != nil || links != nil {
		t.Errorf("no table: links %v, err %v", links, err)
	}
	// A parent without a uevent file is an error naming the device.
	if _, err := ProbePartition(sys, dev, "/dev/x1", "/devices/none/x/x1", map[string]string{"DEVTYPE": "partition", "PARTN": "1"}); err == nil {
		t.Errorf("missing parent accepted")
	}
}
