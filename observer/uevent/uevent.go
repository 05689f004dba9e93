package uevent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxMessageSize bounds a message Parse accepts. The kernel's own limit is
// UEVENT_BUFFER_SIZE (2048 bytes of environment) plus the header; libudev
// messages carry udev's properties too and stay well under this.
const MaxMessageSize = 16 << 10

// maxKeys bounds the number of KEY=VALUE pairs, so a message of many tiny
// pairs cannot make the parser build a huge map.
const maxKeys = 512

// ErrMalformed is wrapped by every error Parse returns for bad input.
var ErrMalformed = errors.New("malformed uevent")

// Uevent is one kernel device event: what the kernel broadcasts on
// NETLINK_KOBJECT_UEVENT, what libudev re-broadcasts, or what Coldplug
// synthesises from a device's uevent file.
type Uevent struct {
	// Action is "add", "remove", "change", "move", "online", "offline",
	// "bind" or "unbind" (Parse accepts any lower-case word, for kernels
	// that add more).
	Action string
	// DevPath is the device's path under /sys, starting with '/'
	// ("/devices/virtual/net/lo").
	DevPath   string
	Subsystem string
	DevType   string
	// DevName is the node's name under /dev ("vda", "input/event0").
	DevName string
	// Major and Minor are the device number; HasDevNum tells whether the
	// event carried one (major 0 is a valid number for some devices).
	Major, Minor uint64
	HasDevNum    bool
	// Seqnum is the kernel's event sequence number; 0 for coldplug events.
	Seqnum   uint64
	Modalias string
	// Env holds every KEY=VALUE pair of the message, including the ones
	// copied into the fields above.
	Env map[string]string
	// FromUdev is true for a message re-broadcast by udevd (libudev's
	// "libudev\0" framing) rather than sent by the kernel.
	FromUdev bool
}

// DevNode is the device node's path under /dev, or "" when the device has
// none.
func (u *Uevent) DevNode() string {
	if u.DevName == "" {
		return ""
	}
	if strings.HasPrefix(u.DevName, "/") {
		return u.DevName
	}
	return "/dev/" + u.DevName
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// libudevPrefix opens every message udevd sends to libudev monitors.
var libudevPrefix = []byte("libudev\x00")

// libudevMagic is udev_monitor_netlink_header.magic, stored big-endian.
const libudevMagic = 0xfeedcafe

// libudevHeaderSize is sizeof(struct udev_monitor_netlink_header): the
// prefix, then magic, header_size, properties_off, properties_len and four
// filter hashes, all 32-bit.
const libudevHeaderSize = 40

// Parse decodes one netlink uevent message: a kernel message
// ("ACTION@DEVPATH\0KEY=VALUE\0...") or a libudev one (the "libudev\0"
// header, then the properties). It never panics; bad input gives an error
// wrapping ErrMalformed.
func Parse(msg []byte) (*Uevent, error) {
	if len(msg) > MaxMessageSize {
		return nil, malformed("message of %d bytes exceeds %d", len(msg), MaxMessageSize)
	}
	if bytes.HasPrefix(msg, libudevPrefix) {
		return parseLibudev(msg)
	}
	return parseKernel(msg)
}

func parseKernel(msg []byte) (*Uevent, error) {
	end := bytes.IndexByte(msg, 0)
	if end < 0 {
		return nil, malformed("no NUL after the header")
	}
	header := msg[:end]
	at := bytes.IndexByte(header, '@')
	if at < 0 {
		return nil, malformed("header %q has no '@'", truncate(header))
	}
	action, devpath := string(header[:at]), string(header[at+1:])
	u, err := parseProperties(msg[end+1:])
	if err != nil {
		return nil, err
	}
	// The header and the ACTION/DEVPATH keys say the same thing in every
	// kernel message; a disagreement means the message was not the
	// kernel's.
	if a, ok := u.Env["ACTION"]; ok && a != action {
		return nil, malformed("header action %q but ACTION=%q", action, a)
	}
	if d, ok := u.Env["DEVPATH"]; ok && d != devpath {
		return nil, malformed("header devpath %q but DEVPATH=%q", devpath, d)
	}
	u.Env["ACTION"], u.Env["DEVPATH"] = action, devpath
	if err := u.fill(); err != nil {
		return nil, err
	}
	return u, nil
}

func parseLibudev(msg []byte) (*Uevent, error) {
	if len(msg) < libudevHeaderSize {
		return nil, malformed("libudev message of %d bytes is shorter than its header", len(msg))
	}
	if magic := binary.BigEndian.Uint32(msg[8:12]); magic != libudevMagic {
		return nil, malformed("libudev magic %#x, expected %#x", magic, uint32(libudevMagic))
	}
	// The sizes are in the sender's byte order: udevd runs on this machine.
	headerSize := binary.NativeEndian.Uint32(msg[12:16])
	off := binary.NativeEndian.Uint32(msg[16:20])
	n := binary.NativeEndian.Uint32(msg[20:24])
	if headerSize < libudevHeaderSize || off < headerSize || uint64(off)+uint64(n) > uint64(len(msg)) {
		return nil, malformed("libudev header size %d, properties at %d+%d, message of %d bytes", headerSize, off, n, len(msg))
	}
	u, err := parseProperties(msg[off : off+n])
	if err != nil {
		return nil, err
	}
	u.FromUdev = true
	if err := u.fill(); err != nil {
		return nil, err
	}
	return u, nil
}

// parseProperties reads NUL-terminated KEY=VALUE pairs. A trailing pair
// without its NUL is accepted (some senders omit the last one). The keys
// and values are substrings of one copy of b: two allocations per message
// instead of two per pair.
func parseProperties(b []byte) (*Uevent, error) {
	u := &Uevent{Env: make(map[string]string, 12)}
	s := string(b)
	for len(s) > 0 {
		var pair string
		if i := strings.IndexByte(s, 0); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			pair, s = s, ""
		}
		if len(pair) == 0 {
			continue // padding or a doubled NUL
		}
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return nil, malformed("property %q is not KEY=VALUE", truncate([]byte(pair)))
		}
		key := pair[:eq]
		if err := checkKey(key); err != nil {
			return nil, err
		}
		if len(u.Env) >= maxKeys {
			return nil, malformed("more than %d properties", maxKeys)
		}
		u.Env[key] = pair[eq+1:]
	}
	return u, nil
}

// checkKey refuses a property key with a byte the kernel never puts in
// one; netlink messages and coldplugged uevent files share the rule.
func checkKey(key string) error {
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return malformed("property key %q has character %q", truncate([]byte(key)), c)
		}
	}
	return nil
}

// fill copies the well-known keys into their fields and checks them.
func (u *Uevent) fill() error {
	e := u.Env
	u.Action, u.DevPath = e["ACTION"], e["DEVPATH"]
	u.Subsystem, u.DevType, u.DevName, u.Modalias = e["SUBSYSTEM"], e["DEVTYPE"], e["DEVNAME"], e["MODALIAS"]
	if !validAction(u.Action) {
		return malformed("action %q is not a lower-case word", truncate([]byte(u.Action)))
	}
	if err := checkDevPath(u.DevPath); err != nil {
		return err
	}
	if containsDotDot(u.DevName) {
		return malformed("DEVNAME %q contains '..'", u.DevName)
	}
	var err error
	if s, ok := e["SEQNUM"]; ok {
		if u.Seqnum, err = strconv.ParseUint(s, 10, 64); err != nil {
			return malformed("SEQNUM=%q is not a number", truncate([]byte(s)))
		}
	}
	maj, hasMaj := e["MAJOR"]
	min, hasMin := e["MINOR"]
	if hasMaj != hasMin {
		return malformed("MAJOR and MINOR must come together")
	}
	if hasMaj {
		if u.Major, err = strconv.ParseUint(maj, 10, 32); err != nil {
			return malformed("MAJOR=%q is not a number", truncate([]byte(maj)))
		}
		if u.Minor, err = strconv.ParseUint(min, 10, 32); err != nil {
			return malformed("MINOR=%q is not a number", truncate([]byte(min)))
		}
		u.HasDevNum = true
	}
	return nil
}

func validAction(a string) bool {
	if a == "" || len(a) > 32 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 'a' || a[i] > 'z' {
			return false
		}
	}
	return true
}

// checkDevPath refuses device paths that could escape /sys when joined to
// it: Coldplug, UnitNames and the device node code all build paths from it.
func checkDevPath(p string) error {
	if !strings.HasPrefix(p, "/") || len(p) < 2 {
		return malformed("DEVPATH %q does not start with '/'", truncate([]byte(p)))
	}
	if containsDotDot(p) {
		return malformed("DEVPATH %q contains '..'", truncate([]byte(p)))
	}
	return nil
}

func containsDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// truncate keeps error messages short when the input is huge.
func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Marshal encodes the uevent as the kernel would send it: the
// "ACTION@DEVPATH" header, then ACTION, DEVPATH and SUBSYSTEM, then the
// other keys in sorted order, each NUL-terminated. Parse(u.Marshal())
// gives back an equal kernel uevent.
func (u *Uevent) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(u.Action + "@" + u.DevPath + "\x00")
	first := []string{"ACTION", "DEVPATH", "SUBSYSTEM"}
	for _, k := range first {
		if v, ok := u.Env[k]; ok {
			b.WriteString(k + "=" + v + "\x00")
		}
	}
	keys := make([]string, 0, len(u.Env))
	for k := range u.Env {
		if k != "ACTION" && k != "DEVPATH" && k != "SUBSYSTEM" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + u.Env[k] + "\x00")
	}
	return b.Bytes()
}
