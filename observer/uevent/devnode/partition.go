package devnode

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"vigil/observer/uevent/parttable"
)

// PartitionLinks gives the links udev's 60-persistent-storage rules make
// for partition p of a table: /dev/disk/by-partuuid/PARTUUID and, for a
// named GPT entry, /dev/disk/by-partlabel/NAME (encoded as EncodeName
// does).
func PartitionLinks(devnode string, p parttable.Partition) []Link {
	var links []Link
	if p.UUID != "" {
		links = append(links, Link{Path: "/dev/disk/by-partuuid/" + EncodeName(p.UUID), Target: devnode})
	}
	if p.Name != "" {
		links = append(links, Link{Path: "/dev/disk/by-partlabel/" + EncodeName(p.Name), Target: devnode})
	}
	return links
}

// ProbePartition identifies a partition as udev's blkid builtin does: for
// a uevent of a partition (DEVTYPE=partition, PARTN=n) at devpath, it
// reads the partition table of the parent disk (its node named by the
// parent's sysfs uevent file under sysRoot, opened under devRoot), sets
// ID_PART_TABLE_TYPE, ID_PART_TABLE_UUID, ID_PART_ENTRY_SCHEME,
// ID_PART_ENTRY_NUMBER, ID_PART_ENTRY_TYPE, ID_PART_ENTRY_UUID and
// ID_PART_ENTRY_NAME in env, and returns the partition's links. Anything
// that is not a partition, or a disk without a table Vigil reads, gives no
// links and no error.
func ProbePartition(sysRoot, devRoot, devnode, devpath string, env map[string]string) ([]Link, error) {
	if env["DEVTYPE"] != "partition" {
		return nil, nil
	}
	n, err := strconv.Atoi(env["PARTN"])
	if err != nil || n <= 0 {
		return nil, nil
	}
	disk, err := parentDiskNode(sysRoot, devpath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(devRoot, disk))
	if err != nil {
		return nil, fmt.Errorf("partition %s: open disk: %w", devnode, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		size = 0
	}
	// The table counts in the disk's logical sectors (4096 bytes on some
	// disks); without sysfs's word on it, parttable guesses.
	sectorSize, err := parttable.LogicalSectorSize(filepath.Join(sysRoot, path.Dir(path.Clean("/"+devpath))))
	if err != nil {
		sectorSize = 0
	}
	t, err := parttable.ReadSectors(f, size, sectorSize)
	if errors.Is(err, parttable.ErrNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("partition %s: table of %s: %w", devnode, disk, err)
	}
	p, ok := t.Partition(n)
	if !ok {
		return nil, nil
	}
	env["ID_PART_TABLE_TYPE"] = t.Type
	if t.UUID != "" {
		env["ID_PART_TABLE_UUID"] = t.UUID
	}
	env["ID_PART_ENTRY_SCHEME"] = t.Type
	env["ID_PART_ENTRY_NUMBER"] = strconv.Itoa(p.Number)
	env["ID_PART_ENTRY_TYPE"] = p.Type
	if p.UUID != "" {
		env["ID_PART_ENTRY_UUID"] = p.UUID
	}
	if p.Name != "" {
		// udev's blkid builtin (as `blkid -o udev`) encodes the name.
		env["ID_PART_ENTRY_NAME"] = EncodeName(p.Name)
	}
	return PartitionLinks(devnode, p), nil
}

// parentDiskNode gives the device node of the disk holding the partition
// at devpath ("/dev/vda" for .../block/vda/vda1), from the DEVNAME in the
// disk's sysfs uevent file.
func parentDiskNode(sysRoot, devpath string) (string, error) {
	parent := path.Dir(path.Clean("/" + devpath))
	f, err := os.Open(filepath.Join(sysRoot, parent, "uevent"))
	if err != nil {
		return "", fmt.Errorf("parent disk of %s: %w", devpath, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "DEVNAME="); ok && name != "" && !strings.Contains(name, "..") {
			return "/dev/" + name, nil
		}
	}
	return "", fmt.Errorf("parent disk of %s: no DEVNAME in %s/uevent", devpath, parent)
}
