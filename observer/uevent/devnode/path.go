package devnode

import (
	"regexp"
	"strings"
)

var (
	pciAddress  = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	virtioName  = regexp.MustCompile(`^virtio[0-9]+$`)
	scsiAddress = regexp.MustCompile(`^[0-9]+:[0-9]+:[0-9]+:[0-9]+$`)
)

// PathID gives the /dev/disk/by-path name of a block device from its sysfs
// DEVPATH, as udev's path_id builds it for the transports Vigil knows:
// virtio ("virtio-pci-0000:00:04.0"), SCSI behind PCI
// ("pci-0000:00:1f.2-scsi-0:0:0:0") and plain PCI ("pci-0000:01:00.0").
// Partitions get "-partN". It returns "" for paths it cannot name (USB,
// platform devices, virtual block devices such as loop or zram).
func PathID(devpath string, env map[string]string) string {
	parts := strings.Split(strings.Trim(devpath, "/"), "/")
	var id string
	scsi := ""
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		switch {
		case scsiAddress.MatchString(p) && scsi == "":
			h := strings.SplitN(p, ":", 2)
			scsi = "scsi-" + h[1]
		case virtioName.MatchString(p) && i > 0 && pciAddress.MatchString(parts[i-1]):
			id = "virtio-pci-" + parts[i-1]
		case pciAddress.MatchString(p) && id == "":
			id = "pci-" + p
			if scsi != "" {
				id += "-" + scsi
			}
		}
		if id != "" {
			break
		}
	}
	if id == "" {
		return ""
	}
	if env["DEVTYPE"] == "partition" {
		if n := env["PARTN"]; n != "" {
			id += "-part" + n
		}
	}
	return id
}

// PathLinks gives the /dev/disk/by-path link of a block device, if it has
// a path udev would name.
func PathLinks(devnode, devpath string, env map[string]string) []Link {
	id := PathID(devpath, env)
	if id == "" {
		return nil
	}
	return []Link{{Path: "/dev/disk/by-path/" + EncodeName(id), Target: devnode}}
}
