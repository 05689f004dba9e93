package uevent

import (
	"path"
	"strings"
)

// maxUnitName is systemd's limit on a unit name's length.
const maxUnitName = 255

// UnitNames gives the names systemd would give the device units of this
// device, main name first:
//
//   - the sysfs path: "sys-devices-virtual-net-lo.device";
//   - the device node, when there is one: "dev-vda.device";
//   - for network interfaces, the alias systemd's 99-systemd.rules adds:
//     "sys-subsystem-net-devices-eth0.device";
//   - for events from udev, every link in DEVLINKS
//     ("dev-disk-by\x2duuid-....device").
//
// Names are escaped as `systemd-escape --path` escapes them. A name that
// would exceed 255 characters is left out (systemd shortens those with a
// hash that Vigil does not reproduce).
func UnitNames(ev *Uevent) []string {
	var names []string
	add := func(p string) {
		if name, ok := DeviceUnitName(p); ok && !contains(names, name) {
			names = append(names, name)
		}
	}
	add("/sys" + ev.DevPath)
	if node := ev.DevNode(); node != "" {
		add(node)
	}
	if ev.Subsystem == "net" {
		iface := ev.Env["INTERFACE"]
		if iface == "" {
			iface = path.Base(ev.DevPath)
		}
		add("/sys/subsystem/net/devices/" + iface)
	}
	for _, link := range strings.Fields(ev.Env["DEVLINKS"]) {
		add(link)
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// DeviceUnitName gives the device unit name of an absolute path ("/dev/vda"
// gives "dev-vda.device"), as systemd does; ok is false for paths systemd
// refuses (relative, with ".." components) or names longer than 255.
func DeviceUnitName(p string) (name string, ok bool) {
	if !strings.HasPrefix(p, "/") || containsDotDot(p) {
		return "", false
	}
	clean := strings.Trim(path.Clean(p), "/")
	if clean == "" {
		return "-.device", true
	}
	name = escape(clean) + ".device"
	return name, len(name) <= maxUnitName
}

// escape escapes as `systemd-escape` does: '/' becomes '-'; a leading '.'
// and every byte outside [A-Za-z0-9:_.] becomes \xNN.
func escape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == ':' || c == '_' || c == '.' && i > 0:
			b.WriteByte(c)
		default:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
