// Package sockets owns the listening sockets of .socket units: parsing
// listen-* addresses, creating the sockets, FIFOs, netlink sockets and
// special files with the unit's options, removing them again, and watching
// them for the first connection without accepting it.
//
// Sockets are made as systemd makes them: close-on-exec and non-blocking
// (a service receives them as systemd's would), SO_REUSEADDR on IP
// sockets, unix socket files with socket-mode and socket-user/-group,
// missing parent directories created with directory-mode, a stale socket
// file replaced, and host names never resolved (sockets exist before any
// resolver does).
//
// Watch is the observer source that turns "a connection is waiting" into
// one event and then stops looking until Resume: the connection stays in
// the kernel's backlog for the service to accept, so none is lost while
// the service starts.
package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"vigil/units/unitfile"
)

// Spec is what Open needs of a socket unit: its listen addresses and the
// options that shape them.
type Spec struct {
	// Unit is the socket unit's name ("foo.socket"), the default fd name.
	Unit   string
	Listen []Address

	SocketMode    fs.FileMode // unix socket files and FIFOs; default 0666
	DirectoryMode fs.FileMode // missing parent directories; default 0755
	SocketUser    string      // owner of socket files and FIFOs, a name or a number
	SocketGroup   string
	// Symlinks point at the first unix socket path or FIFO.
	Symlinks []string

	// BindIPv6Only is "default" (the kernel's net.ipv6.bindv6only),
	// "both" (dual-stack) or "ipv6-only".
	BindIPv6Only    string
	ReusePort       bool
	Backlog         int // listen(2) backlog; default 4096
	FreeBind        bool
	Transparent     bool
	KeepAlive       bool
	NoDelay         bool
	PassCredentials bool
	ReceiveBuffer   int // bytes; 0 keeps the kernel's default
	SendBuffer      int

	// FileDescriptorName names the fds in LISTEN_FDNAMES; default Unit.
	FileDescriptorName string
}

// FromSection converts a parsed [socket] section of the unit unitName.
func FromSection(unitName string, s *unitfile.SocketSection) (Spec, error) {
	spec := Spec{
		Unit:          unitName,
		SocketMode:    fs.FileMode(s.SocketMode),
		DirectoryMode: fs.FileMode(s.DirectoryMode),
		SocketUser:    s.SocketUser, SocketGroup: s.SocketGroup,
		Symlinks:     s.Symlinks,
		BindIPv6Only: string(s.BindIPv6Only),
		ReusePort:    s.ReusePort, Backlog: s.Backlog, FreeBind: s.FreeBind, Transparent: s.Transparent,
		KeepAlive: s.KeepAlive, NoDelay: s.NoDelay, PassCredentials: s.PassCredentials,
		FileDescriptorName: s.FileDescriptorName,
	}
	for _, b := range []struct {
		key  string
		size *unitfile.Size
		dst  *int
	}{{"receive-buffer", s.ReceiveBuffer, &spec.ReceiveBuffer}, {"send-buffer", s.SendBuffer, &spec.SendBuffer}} {
		if b.size == nil {
			continue
		}
		if b.size.Infinity || b.size.Percent > 0 || b.size.Bytes > 1<<31-1 {
			return Spec{}, fmt.Errorf("%s = %q: expected a size in bytes below 2G", b.key, b.size.String())
		}
		*b.dst = int(b.size.Bytes)
	}
	for _, l := range []struct {
		kind   Kind
		values []string
	}{
		{Stream, s.ListenStream}, {Datagram, s.ListenDatagram}, {SeqPacket, s.ListenSequentialPacket},
		{FIFO, s.ListenFIFO}, {Netlink, s.ListenNetlink}, {Special, s.ListenSpecial},
	} {
		for _, v := range l.values {
			a, err := ParseListen(l.kind, v)
			if err != nil {
				return Spec{}, err
			}
			spec.Listen = append(spec.Listen, a)
		}
	}
	return spec, nil
}

// Listener is one open listening fd of a socket unit.
type Listener struct {
	// File holds the fd (close-on-exec, non-blocking). Hand it to a service
	// as one of exec's ExtraFiles; do not close it except through Close.
	File    *os.File
	Kind    Kind
	Address Address
	// Name is the fd's name for LISTEN_FDNAMES.
	Name string

	// created are the files Open made (the socket file or FIFO and the
	// symlinks), removed by Close(true).
	created []string
}

// String is the address for display ("127.0.0.1:8080", "/run/foo.sock").
func (l *Listener) String() string { return l.Address.String() }

// FD is the listener's fd number in this process. Unlike File.Fd it does
// not switch the file to blocking mode.
func (l *Listener) FD() int { return rawFD(l.File) }

// Close closes the fd and, with removeOnStop, removes the socket file or
// FIFO and the symlinks Open created. Abstract, IP and netlink sockets
// vanish with their fd.
func (l *Listener) Close(removeOnStop bool) error {
	err := l.File.Close()
	if removeOnStop {
		for _, p := range l.created {
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
				err = rerr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("close %s %s: %w", l.Kind.Key(), l.Address, err)
	}
	return nil
}

// CloseAll closes every listener (see Listener.Close).
func CloseAll(ls []*Listener, removeOnStop bool) error {
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.Close(removeOnStop))
	}
	return errors.Join(errs...)
}

// Open creates every listener of spec, in order. On error nothing stays
// open and the files it created are removed again.
func Open(spec Spec) ([]*Listener, error) {
	if spec.SocketMode == 0 {
		spec.SocketMode = 0o666
	}
	if spec.DirectoryMode == 0 {
		spec.DirectoryMode = 0o755
	}
	if spec.Backlog <= 0 {
		spec.Backlog = 4096
	}
	name := spec.FileDescriptorName
	if name == "" {
		name = spec.Unit
	}
	uid, gid, err := owner(spec.SocketUser, spec.SocketGroup)
	if err != nil {
		return nil, err
	}
	var out []*Listener
	fail := func(err error) ([]*Listener, error) {
		CloseAll(out, true)
		return nil, err
	}
	symlinked := len(spec.Symlinks) == 0
	for _, a := range spec.Listen {
		l, err := open(spec, a, uid, gid)
		if err != nil {
			written := a.Written
			if written == "" {
				written = a.String()
			}
			return fail(fmt.Errorf("%s = %q: %w", a.Kind.Key(), written, err))
		}
		l.Name = name
		out = append(out, l)
		if !symlinked && len(l.created) > 0 {
			symlinked = true
			if err := makeSymlinks(l, spec.Symlinks); err != nil {
				return fail(err)
			}
		}
	}
	if !symlinked {
		return fail(fmt.Errorf("symlinks: no unix socket path or FIFO to point them at"))
	}
	return out, nil
}

func makeSymlinks(l *Listener, links []string) error {
	target := l.created[0]
	for _, link := range links {
		if st, err := os.Lstat(link); err == nil && st.Mode().Type() == fs.ModeSymlink {
			os.Remove(link)
		}
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("symlinks: %w", err)
		}
		l.created = append(l.created, link)
	}
	return nil
}

// owner resolves socket-user and socket-group; -1 leaves an ID alone. A
// user without a group gives the user's primary group, as in systemd.
func owner(userName, groupName string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if userName != "" {
		if n, perr := strconv.Atoi(userName); perr == nil {
			uid = n
		} else {
			u, lerr := user.Lookup(userName)
			if lerr != nil {
				return 0, 0, fmt.Errorf("socket-user = %q: %w", userName, lerr)
			}
			uid, _ = strconv.Atoi(u.Uid)
			if groupName == "" {
				gid, _ = strconv.Atoi(u.Gid)
			}
		}
	}
	if groupName != "" {
		if n, perr := strconv.Atoi(groupName); perr == nil {
			gid = n
		} else {
			g, lerr := user.LookupGroup(groupName)
			if lerr != nil {
				return 0, 0, fmt.Errorf("socket-group = %q: %w", groupName, lerr)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}

func open(spec Spec, a Address, uid, gid int) (*Listener, error) {
	switch a.Family {
	case FamilyUnix:
		return openUnix(spec, a, uid, gid)
	case FamilyInet, FamilyInet6:
		return openInet(spec, a)
	case FamilyVsock:
		return openVsock(spec, a)
	case FamilyNetlink:
		return openNetlink(spec, a)
	case FamilyFile:
		if a.Kind == FIFO {
			return openFIFO(spec, a, uid, gid)
		}
		return openSpecial(a)
	}
	return nil, fmt.Errorf("unknown address family %q", a.Family)
}

func sockType(k Kind) int {
	switch k {
	case Datagram:
		return unix.SOCK_DGRAM
	case SeqPacket:
		return unix.SOCK_SEQPACKET
	}
	return unix.SOCK_STREAM
}

// newListener wraps fd; the File's name is the address, for error texts.
func newListener(fd int, a Address) *Listener {
	return &Listener{File: os.NewFile(uintptr(fd), a.String()), Kind: a.Kind, Address: a}
}

// preparePath creates the parent directories and clears a stale socket
// file; anything else at the path is an error, never silently removed.
func preparePath(path string, dirMode fs.FileMode, want fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode().Type() == want && want == fs.ModeSocket:
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale socket: %w", err)
		}
		return nil
	case st.Mode().Type() == want:
		return nil // an existing FIFO is reused, as by systemd
	}
	return fmt.Errorf("%s exists and is not a %s", path, map[fs.FileMode]string{fs.ModeSocket: "socket", fs.ModeNamedPipe: "FIFO"}[want])
}

func openUnix(spec Spec, a Address, uid, gid int) (l *Listener, err error) {
	if !a.Abstract() {
		if err := preparePath(a.Path, spec.DirectoryMode, fs.ModeSocket); err != nil {
			return nil, err
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, sockType(a.Kind)|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer closeOnError(fd, &err)
	if spec.PassCredentials {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			return nil, fmt.Errorf("SO_PASSCRED: %w", err)
		}
	}
	if err := setBuffers(fd, spec); err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: a.Path}); err != nil {
		return nil, bindError(a, err)
	}
	var created []string
	if !a.Abstract() {
		created = []string{a.Path}
		if err := chmodChown(a.Path, spec.SocketMode, uid, gid); err != nil {
			os.Remove(a.Path)
			return nil, err
		}
	}
	if a.Kind != Datagram {
		if err := unix.Listen(fd, spec.Backlog); err != nil {
			os.Remove(a.Path)
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	l = newListener(fd, a)
	l.created = created
	return l, nil
}

func chmodChown(path string, mode fs.FileMode, uid, gid int) error {
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func closeOnError(fd int, err *error) {
	if *err != nil {
		unix.Close(fd)
	}
}

func bindError(a Address, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("address %s already in use", a)
	}
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("bind %s: address not available on this machine (free-bind allows it)", a)
	}
	return fmt.Errorf("bind %s: %w", a, err)
}

func setBuffers(fd int, spec Spec) error {
	// The FORCE options pass net.core.[rw]mem_max (we are root); without
	// the privilege, fall back to the capped ones.
	for _, b := range []struct {
		size          int
		force, normal int
		name          string
	}{
		{spec.ReceiveBuffer, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, "receive-buffer"},
		{spec.SendBuffer, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, "send-buffer"},
	} {
		if b.size <= 0 {
			continue
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.force, b.size) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.normal, b.size); err != nil {
				return fmt.Errorf("%s: %w", b.name, err)
			}
		}
	}
	return nil
}

func openInet(spec Spec, a Address) (l *Listener, err error) {
	family := unix.AF_INET6
	if a.Family == FamilyInet {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, sockType(a.Kind)|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) && a.AnyHost {
		// A bare port on a machine without IPv6: listen on IPv4's any.
		a.Family, a.IP = FamilyInet, netip.IPv4Unspecified()
		return openInet(spec, a)
	}
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer closeOnError(fd, &err)
	ipLevel, freebind, transparent := unix.IPPROTO_IP, unix.IP_FREEBIND, unix.IP_TRANSPARENT
	if family == unix.AF_INET6 {
		ipLevel, freebind, transparent = unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, unix.IPV6_TRANSPARENT
	}
	type opt struct {
		on          bool
		level, name int
		value       int
		key         string
	}
	opts := []opt{
		{true, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"},
		{spec.ReusePort, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "reuse-port"},
		{spec.FreeBind, ipLevel, freebind, 1, "free-bind"},
		{spec.Transparent, ipLevel, transparent, 1, "transparent"},
		{spec.KeepAlive, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "keep-alive"},
		{spec.NoDelay && a.Kind == Stream, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "no-delay"},
	}
	if family == unix.AF_INET6 {
		switch spec.BindIPv6Only {
		case "both":
			opts = append(opts, opt{true, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, "bind-ipv6-only"})
		case "ipv6-only":
			opts = append(opts, opt{true, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1, "bind-ipv6-only"})
		}
	}
	for _, o := range opts {
		if !o.on {
			continue
		}
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return nil, fmt.Errorf("%s: %w", o.key, err)
		}
	}
	if err := setBuffers(fd, spec); err != nil {
		return nil, err
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(a.Port), Addr: a.IP.As4()}
	} else {
		s6 := &unix.SockaddrInet6{Port: int(a.Port), Addr: a.IP.As16()}
		if a.Zone != "" {
			ifi, err := net.InterfaceByName(a.Zone)
			if err != nil {
				return nil, fmt.Errorf("interface %q: %w", a.Zone, err)
			}
			s6.ZoneId = uint32(ifi.Index)
		}
		sa = s6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, bindError(a, err)
	}
	if a.Kind == Stream {
		if err := unix.Listen(fd, spec.Backlog); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	return newListener(fd, a), nil
}

func openVsock(spec Spec, a Address) (l *Listener, err error) {
	fd, err := unix.Socket(unix.AF_VSOCK, sockType(a.Kind)|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socket (is the vsock module loaded?): %w", err)
	}
	defer closeOnError(fd, &err)
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: a.CID, Port: uint32(a.Port)}); err != nil {
		return nil, bindError(a, err)
	}
	if a.Kind == Stream {
		if err := unix.Listen(fd, spec.Backlog); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	return newListener(fd, a), nil
}

func openNetlink(spec Spec, a Address) (l *Listener, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, a.NetlinkProto)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer closeOnError(fd, &err)
	if spec.PassCredentials {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
			return nil, fmt.Errorf("SO_PASSCRED: %w", err)
		}
	}
	if err := setBuffers(fd, spec); err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: a.NetlinkGroups}); err != nil {
		return nil, bindError(a, err)
	}
	return newListener(fd, a), nil
}

func openFIFO(spec Spec, a Address, uid, gid int) (*Listener, error) {
	if err := preparePath(a.Path, spec.DirectoryMode, fs.ModeNamedPipe); err != nil {
		return nil, err
	}
	made := false
	if err := unix.Mkfifo(a.Path, uint32(spec.SocketMode.Perm())); err == nil {
		made = true
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	// O_RDWR: the FIFO never reports EOF when a writer goes away, so it
	// stays readable only while data waits.
	fd, err := unix.Open(a.Path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		if made {
			os.Remove(a.Path)
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	if err := chmodChown(a.Path, spec.SocketMode, uid, gid); err != nil {
		unix.Close(fd)
		if made {
			os.Remove(a.Path)
		}
		return nil, err
	}
	l := newListener(fd, a)
	l.created = []string{a.Path}
	return l, nil
}

func openSpecial(a Address) (*Listener, error) {
	fd, err := unix.Open(a.Path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat: %w", err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFCHR && t != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("not a character device or regular file")
	}
	return newListener(fd, a), nil
}

// rawFD reads a File's fd without File.Fd's side effect of making it
// blocking.
func rawFD(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(u uintptr) { fd = int(u) })
	return fd
}
