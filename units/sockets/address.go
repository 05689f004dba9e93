package sockets

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Kind is what a listen-* key makes.
type Kind string

// The listener kinds, one per listen-* key.
const (
	Stream    Kind = "stream"    // listen-stream: SOCK_STREAM
	Datagram  Kind = "datagram"  // listen-datagram: SOCK_DGRAM
	SeqPacket Kind = "seqpacket" // listen-sequential-packet: SOCK_SEQPACKET (unix only)
	FIFO      Kind = "fifo"      // listen-fifo: a named pipe
	Netlink   Kind = "netlink"   // listen-netlink: "FAMILY [GROUP]"
	Special   Kind = "special"   // listen-special: a character device or file opened as is
)

// Key is the unit file key that makes listeners of this kind.
func (k Kind) Key() string {
	switch k {
	case SeqPacket:
		return "listen-sequential-packet"
	}
	return "listen-" + string(k)
}

// KindOfKey maps a unit file key to its kind.
func KindOfKey(key string) (Kind, bool) {
	for _, k := range []Kind{Stream, Datagram, SeqPacket, FIFO, Netlink, Special} {
		if k.Key() == key {
			return k, true
		}
	}
	return "", false
}

// Family is the address family of a parsed address.
type Family string

// The families a listen address may name.
const (
	FamilyUnix    Family = "unix"    // a path or an @abstract name
	FamilyInet    Family = "inet"    // IPv4
	FamilyInet6   Family = "inet6"   // IPv6, also a bare port (dual-stack)
	FamilyVsock   Family = "vsock"   // vsock:CID:PORT
	FamilyNetlink Family = "netlink" // a netlink family and multicast groups
	FamilyFile    Family = "file"    // FIFOs and special files
)

// Address is one parsed listen-* value.
type Address struct {
	Kind   Kind
	Family Family
	// Written is the value as the unit file gave it.
	Written string
	// Path is the unix socket path ("/run/x.sock" or "@abstract"), or the
	// FIFO or special file.
	Path string
	// IP is the address to bind for inet families; for a bare port it is
	// the unspecified address ([::], or 0.0.0.0 without IPv6) and AnyHost
	// is set.
	IP      netip.Addr
	AnyHost bool
	Port    uint16
	// Zone is the IPv6 scope ("[fe80::1%eth0]:80").
	Zone string
	// CID is the vsock context id.
	CID uint32
	// NetlinkProto is the netlink protocol number (NETLINK_ROUTE...),
	// NetlinkGroups the multicast group mask bound to.
	NetlinkProto  int
	NetlinkGroups uint32
}

// Abstract reports whether a unix address is in the abstract namespace.
func (a Address) Abstract() bool { return strings.HasPrefix(a.Path, "@") }

// String renders the address for display, in the form it was written.
func (a Address) String() string {
	switch a.Family {
	case FamilyUnix, FamilyFile:
		return a.Path
	case FamilyInet, FamilyInet6:
		host := a.IP.String()
		if a.Zone != "" {
			host += "%" + a.Zone
		}
		return net.JoinHostPort(host, strconv.Itoa(int(a.Port)))
	case FamilyVsock:
		return fmt.Sprintf("vsock:%d:%d", a.CID, a.Port)
	case FamilyNetlink:
		return fmt.Sprintf("%s %d", netlinkName(a.NetlinkProto), a.NetlinkGroups)
	}
	return "?"
}

// maxUnixPath is sun_path's size less the terminating NUL.
const maxUnixPath = 107

// netlinkFamilyNames lists the names systemd accepts for listen-netlink,
// indexed by protocol number ("" where the kernel has none). A function,
// so no table is package state.
func netlinkFamilyNames() [22]string {
	return [22]string{0: "route", 2: "usersock", 3: "firewall", 4: "sock-diag", 5: "nflog", 6: "xfrm",
		7: "selinux", 8: "iscsi", 9: "audit", 10: "fib-lookup", 11: "connector", 12: "netfilter",
		13: "ip6-fw", 14: "dnrtmsg", 15: "kobject-uevent", 16: "generic", 18: "scsitransport",
		19: "ecryptfs", 20: "rdma", 21: "crypto"}
}

func netlinkProto(name string) (int, bool) {
	if name == "inet-diag" { // the older name of sock-diag
		return 4, true
	}
	for proto, n := range netlinkFamilyNames() {
		if n != "" && n == name {
			return proto, true
		}
	}
	return 0, false
}

func netlinkName(proto int) string {
	if names := netlinkFamilyNames(); proto >= 0 && proto < len(names) && names[proto] != "" {
		return names[proto]
	}
	return strconv.Itoa(proto)
}

// ParseListen reads the value of a listen-* key. Errors name the key and
// the value: `listen-stream = "localhost:99999": port out of range`.
func ParseListen(kind Kind, value string) (Address, error) {
	a, err := parseListen(kind, value)
	if err != nil {
		return Address{}, fmt.Errorf("%s = %q: %w", kind.Key(), value, err)
	}
	return a, nil
}

func parseListen(kind Kind, s string) (Address, error) {
	a := Address{Kind: kind, Written: s}
	switch kind {
	case FIFO, Special:
		if !filepath.IsAbs(s) {
			return a, fmt.Errorf("expected an absolute path")
		}
		a.Family, a.Path = FamilyFile, filepath.Clean(s)
		return a, nil
	case Netlink:
		return parseNetlink(a, s)
	case Stream, Datagram, SeqPacket:
	default:
		return a, fmt.Errorf("unknown listener kind %q", kind)
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "@") {
		return parseUnix(a, s)
	}
	if kind == SeqPacket {
		return a, fmt.Errorf("sequential-packet sockets are unix only: expected a path or @abstract name")
	}
	if rest, ok := strings.CutPrefix(s, "vsock:"); ok {
		return parseVsock(a, rest)
	}
	return parseInet(a, s)
}

func parseUnix(a Address, s string) (Address, error) {
	a.Family = FamilyUnix
	if s == "@" {
		return a, fmt.Errorf("empty abstract socket name")
	}
	if len(s) > maxUnixPath {
		return a, fmt.Errorf("unix socket address longer than %d bytes", maxUnixPath)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return a, fmt.Errorf("NUL byte in unix socket address")
	}
	if s[0] == '/' {
		if strings.HasSuffix(s, "/") {
			return a, fmt.Errorf("unix socket path names a directory")
		}
		s = filepath.Clean(s)
	}
	a.Path = s
	return a, nil
}

func parseVsock(a Address, s string) (Address, error) {
	a.Family = FamilyVsock
	cid, port, ok := strings.Cut(s, ":")
	if !ok {
		return a, fmt.Errorf("expected vsock:CID:PORT")
	}
	c, err := strconv.ParseUint(cid, 10, 32)
	if err != nil {
		return a, fmt.Errorf("vsock CID %q is not a number", cid)
	}
	p, err := parsePort(port)
	if err != nil {
		return a, err
	}
	a.CID, a.Port = uint32(c), p
	return a, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("missing port")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("port %q is not a number (host names are not resolved: write an IP address, a path or @abstract)", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return 0, fmt.Errorf("port out of range (1..65535)")
	}
	return uint16(n), nil
}

// parseInet reads "PORT", "IPV4:PORT" and "[IPV6]:PORT" ("[IPV6%ZONE]:PORT").
// Host names are not resolved, as in systemd: the socket must exist before
// any resolver does.
func parseInet(a Address, s string) (Address, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		p, err := parsePort(s)
		if err != nil {
			return a, err
		}
		a.Family, a.IP, a.AnyHost, a.Port = FamilyInet6, netip.IPv6Unspecified(), true, p
		return a, nil
	}
	host, portText := s[:i], s[i+1:]
	p, err := parsePort(portText)
	if err != nil {
		return a, err
	}
	a.Port = p
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return a, fmt.Errorf("missing ']' after the IPv6 address")
		}
		host = host[1 : len(host)-1]
		host, a.Zone, _ = strings.Cut(host, "%")
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return a, fmt.Errorf("%q is not an IPv6 address", host)
		}
		if a.Zone != "" && len(a.Zone) > 15 {
			return a, fmt.Errorf("interface name %q too long", a.Zone)
		}
		a.Family, a.IP = FamilyInet6, ip
		return a, nil
	}
	if strings.Contains(host, ":") {
		return a, fmt.Errorf("write IPv6 addresses in brackets, [::1]:80")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return a, fmt.Errorf("%q is not an IPv4 address (host names are not resolved)", host)
	}
	a.Family, a.IP = FamilyInet, ip
	return a, nil
}

func parseNetlink(a Address, s string) (Address, error) {
	a.Family = FamilyNetlink
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return a, fmt.Errorf("expected \"FAMILY [GROUP]\", e.g. \"kobject-uevent 1\"")
	}
	proto, ok := netlinkProto(f[0])
	if !ok {
		n, err := strconv.ParseUint(f[0], 10, 8)
		if err != nil || n > 31 {
			return a, fmt.Errorf("unknown netlink family %q", f[0])
		}
		proto = int(n)
	}
	a.NetlinkProto = proto
	if len(f) == 2 {
		g, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return a, fmt.Errorf("netlink group %q is not a number", f[1])
		}
		a.NetlinkGroups = uint32(g)
	}
	return a, nil
}
