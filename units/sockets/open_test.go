package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/units/unitfile"
)

// freePort finds a TCP and UDP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// openOnFreePort opens the listeners spec(port) describes on a port from
// freePort, trying another one when the bind finds it taken: tests of
// other packages run at the same time and may take the port between
// freePort's check and the bind. It returns the listeners (closed at the
// end of the test) and the port.
func openOnFreePort(t *testing.T, spec func(port string) Spec) ([]*Listener, string) {
	t.Helper()
	for range 10 {
		port := strconv.Itoa(freePort(t))
		ls, err := Open(spec(port))
		if err == nil {
			t.Cleanup(func() { CloseAll(ls, true) })
			return ls, port
		}
		if !strings.Contains(err.Error(), "already in use") {
			t.Fatal(err)
		}
		t.Logf("%v: trying another port", err)
	}
	t.Fatal("every port tried was taken before it could be bound")
	return nil, ""
}

func mustParse(t *testing.T, kind Kind, value string) Address {
	t.Helper()
	a, err := ParseListen(kind, value)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openSpec(t *testing.T, spec Spec) []*Listener {
	t.Helper()
	ls, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseAll(ls, true) })
	return ls
}

func getInt(t *testing.T, l *Listener, level, opt int) int {
	t.Helper()
	v, err := unix.GetsockoptInt(l.FD(), level, opt)
	if err != nil {
		t.Fatalf("getsockopt %d/%d on %s: %v", level, opt, l, err)
	}
	return v
}

func TestParseListenForms(t *testing.T) {
	cases := []struct {
		kind    Kind
		value   string
		family  Family
		display string
	}{
		{Stream, "8080", FamilyInet6, "[::]:8080"},
		{Stream, "127.0.0.1:8080", FamilyInet, "127.0.0.1:8080"},
		{Datagram, "[::1]:53", FamilyInet6, "[::1]:53"},
		{Stream, "[fe80::1%lo]:80", FamilyInet6, "[fe80::1%lo]:80"},
		{Stream, "/run/foo.sock", FamilyUnix, "/run/foo.sock"},
		{Stream, "/run//foo/../foo.sock", FamilyUnix, "/run/foo.sock"},
		{SeqPacket, "@abstract", FamilyUnix, "@abstract"},
		{Stream, "vsock:2:1234", FamilyVsock, "vsock:2:1234"},
		{Netlink, "kobject-uevent 1", FamilyNetlink, "kobject-uevent 1"},
		{Netlink, "route", FamilyNetlink, "route 0"},
		{Netlink, "inet-diag 0", FamilyNetlink, "sock-diag 0"},
		{FIFO, "/run/foo.fifo", FamilyFile, "/run/foo.fifo"},
		{Special, "/dev/kmsg", FamilyFile, "/dev/kmsg"},
	}
	for _, c := range cases {
		a, err := ParseListen(c.kind, c.value)
		if err != nil {
			t.Errorf("%s %q: %v", c.kind, c.value, err)
			continue
		}
		if a.Family != c.family || a.String() != c.display || a.Written != c.value {
			t.Errorf("%s %q: family %s display %q, want %s %q", c.kind, c.value, a.Family, a, c.family, c.display)
		}
	}
}

func TestParseListenErrors(t *testing.T) {
	cases := []struct {
		kind  Kind
		value string
		want  string
	}{
		{Stream, "localhost:99999", `listen-stream = "localhost:99999": port out of range`},
		{Stream, "localhost:80", `is not an IPv4 address`},
		{Stream, "0", "port out of range"},
		{Stream, "http", "is not a number"},
		{Stream, "::1:80", "brackets"},
		{Stream, "[::1:80", "missing ']'"},
		{Stream, "[1.2.3.4]:80", "not an IPv6 address"},
		{Datagram, "", "missing port"},
		{Stream, "@", "empty abstract"},
		{Stream, "/" + strings.Repeat("x", 120), "longer than"},
		{Stream, "/run/dir/", "directory"},
		{SeqPacket, "127.0.0.1:80", "listen-sequential-packet = \"127.0.0.1:80\": sequential-packet sockets are unix only"},
		{Netlink, "nonsense 1", "unknown netlink family"},
		{Netlink, "route x", "not a number"},
		{Netlink, "", "FAMILY [GROUP]"},
		{FIFO, "relative", "absolute path"},
		{Stream, "vsock:x:1", "CID"},
	}
	for _, c := range cases {
		_, err := ParseListen(c.kind, c.value)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: error %v, want it to contain %q", c.kind, c.value, err, c.want)
		}
	}
}

func TestTCPOptions(t *testing.T) {
	ls, port := openOnFreePort(t, func(port string) Spec {
		return Spec{
			Unit:      "web.socket",
			Listen:    []Address{mustParse(t, Stream, "127.0.0.1:"+port)},
			ReusePort: true, FreeBind: true, Transparent: true, KeepAlive: true, NoDelay: true,
			ReceiveBuffer: 1 << 20, SendBuffer: 300000, Backlog: 17,
		}
	})
	l := ls[0]
	if l.Name != "web.socket" || l.String() != "127.0.0.1:"+port {
		t.Errorf("name %q address %q", l.Name, l)
	}
	for _, o := range []struct {
		name        string
		level, opt  int
		want        int
		atLeastWant bool
	}{
		{"SO_ACCEPTCONN", unix.SOL_SOCKET, unix.SO_ACCEPTCONN, 1, false},
		{"SO_TYPE", unix.SOL_SOCKET, unix.SO_TYPE, unix.SOCK_STREAM, false},
		{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, false},
		{"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, false},
		{"IP_FREEBIND", unix.IPPROTO_IP, unix.IP_FREEBIND, 1, false},
		{"IP_TRANSPARENT", unix.IPPROTO_IP, unix.IP_TRANSPARENT, 1, false},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, false},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, false},
		// The kernel doubles the buffer sizes it is given.
		{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, 2 << 20, false},
		{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, 600000, false},
	} {
		if got := getInt(t, l, o.level, o.opt); got != o.want {
			t.Errorf("%s = %d, want %d", o.name, got, o.want)
		}
	}
	fl, err := unix.FcntlInt(uintptr(l.FD()), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("flags %#x: want O_NONBLOCK, as systemd passes them", fl)
	}
	fd, err := unix.FcntlInt(uintptr(l.FD()), unix.F_GETFD, 0)
	if err != nil || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd flags %#x: want FD_CLOEXEC", fd)
	}
	// A real client connects and is accepted.
	c, err := net.Dial("tcp", l.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ln, err := net.FileListener(l.File)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	_, err = Open(Spec{Unit: "x.socket", Listen: []Address{mustParse(t, Stream, addr)}})
	want := fmt.Sprintf("listen-stream = %q: address %s already in use", addr, addr)
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	// A later failure closes and removes what was already made.
	dir := t.TempDir()
	sock := filepath.Join(dir, "first.sock")
	_, err = Open(Spec{Unit: "x.socket", Listen: []Address{mustParse(t, Stream, sock), mustParse(t, Stream, addr)}})
	if err == nil {
		t.Fatal("second listener's failure not reported")
	}
	if _, serr := os.Lstat(sock); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("first listener's socket file left behind: %v", serr)
	}
}

func TestIPv6Options(t *testing.T) {
	if _, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	// The kernel makes a socket bound to a specific IPv6 address v6-only
	// whatever it was told: the modes differ on the any address.
	for mode, want := range map[string]int{"ipv6-only": 1, "both": 0} {
		ls, _ := openOnFreePort(t, func(port string) Spec {
			return Spec{Unit: "v6.socket", Listen: []Address{mustParse(t, Datagram, "[::]:"+port)}, BindIPv6Only: mode}
		})
		if got := getInt(t, ls[0], unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); got != want {
			t.Errorf("bind-ipv6-only = %s: IPV6_V6ONLY %d, want %d", mode, got, want)
		}
		if got := getInt(t, ls[0], unix.SOL_SOCKET, unix.SO_TYPE); got != unix.SOCK_DGRAM {
			t.Errorf("SO_TYPE %d, want SOCK_DGRAM", got)
		}
		CloseAll(ls, true)
	}
	// A bare port is dual-stack with "both": an IPv4 client reaches it.
	ls, port := openOnFreePort(t, func(port string) Spec {
		return Spec{Unit: "any.socket", Listen: []Address{mustParse(t, Stream, port)}, BindIPv6Only: "both"}
	})
	if got := getInt(t, ls[0], unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); got != 0 {
		t.Errorf("bare port with both: IPV6_V6ONLY %d", got)
	}
	loop6, _ := openOnFreePort(t, func(port string) Spec {
		return Spec{Unit: "v6.socket", Listen: []Address{mustParse(t, Datagram, "[::1]:"+port)}}
	})
	if got := getInt(t, loop6[0], unix.SOL_SOCKET, unix.SO_TYPE); got != unix.SOCK_DGRAM {
		t.Errorf("[::1] datagram: SO_TYPE %d", got)
	}
	c, err := net.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("IPv4 client to the dual-stack %s: %v", ls[0], err)
	}
	c.Close()
}

func TestUnixPathSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "app.sock")
	link := filepath.Join(dir, "link.sock")
	ls := openSpec(t, Spec{
		Unit: "app.socket", Listen: []Address{mustParse(t, Stream, path)},
		SocketMode: 0o640, DirectoryMode: 0o750, SocketUser: "nobody", SocketGroup: "nogroup",
		Symlinks: []string{link}, PassCredentials: true, FileDescriptorName: "app",
	})
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != 0o640 || sys.Uid != 65534 || sys.Gid != 65534 {
		t.Errorf("socket file %v uid %d gid %d, want socket 0640 owned by 65534:65534", st.Mode(), sys.Uid, sys.Gid)
	}
	dst, err := os.Stat(filepath.Join(dir, "a"))
	if err != nil || dst.Mode().Perm()&^0o750 != 0 {
		t.Errorf("parent directory %v: want directory-mode 0750 (less the umask)", dst.Mode())
	}
	if target, err := os.Readlink(link); err != nil || target != path {
		t.Errorf("symlink -> %q, %v", target, err)
	}
	if got := getInt(t, ls[0], unix.SOL_SOCKET, unix.SO_PASSCRED); got != 1 {
		t.Errorf("SO_PASSCRED %d", got)
	}
	if ls[0].Name != "app" {
		t.Errorf("fd name %q", ls[0].Name)
	}
	c, err := net.Dial("unix", link)
	if err != nil {
		t.Fatalf("client through the symlink: %v", err)
	}
	c.Close()
	// Close without remove-on-stop leaves the files; with it, removes them.
	ls[0].Close(false)
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("socket file gone without remove-on-stop: %v", err)
	}
	// A stale socket file is replaced by the next Open.
	ls2 := openSpec(t, Spec{Unit: "app.socket", Listen: []Address{mustParse(t, Stream, path)}, Symlinks: []string{link}})
	if err := ls2[0].Close(true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, link} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after Close(true): %v", p, err)
		}
	}
}

func TestUnixPathErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	// A parent that cannot be a directory.
	_, err := Open(Spec{Unit: "x.socket", Listen: []Address{mustParse(t, Stream, file+"/sub/x.sock")}})
	if err == nil || !strings.Contains(err.Error(), "parent directory") || !strings.Contains(err.Error(), file) {
		t.Errorf("socket under a regular file: %v", err)
	}
	// Something other than a socket in the way is never removed.
	_, err = Open(Spec{Unit: "x.socket", Listen: []Address{mustParse(t, Stream, file)}})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("socket over a regular file: %v", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("regular file removed: %v", err)
	}
	_, err = Open(Spec{Unit: "x.socket", Listen: []Address{mustParse(t, Stream, "/x.sock")}, SocketUser: "no-such-user-here"})
	if err == nil || !strings.Contains(err.Error(), "socket-user") {
		t.Errorf("unknown user: %v", err)
	}
	_, err = Open(Spec{Unit: "x.socket", Listen: []Address{mustParse(t, Stream, "@vigil-x"+strconv.Itoa(os.Getpid()))}, Symlinks: []string{filepath.Join(dir, "l")}})
	if err == nil || !strings.Contains(err.Error(), "symlinks") {
		t.Errorf("symlinks without a path: %v", err)
	}
}

func TestAbstractAndSeqPacket(t *testing.T) {
	name := fmt.Sprintf("@vigil-sockets-test-%d", os.Getpid())
	ls := openSpec(t, Spec{Unit: "abs.socket", Listen: []Address{mustParse(t, SeqPacket, name)}})
	if got := getInt(t, ls[0], unix.SOL_SOCKET, unix.SO_TYPE); got != unix.SOCK_SEQPACKET {
		t.Errorf("SO_TYPE %d, want SOCK_SEQPACKET", got)
	}
	sa, err := unix.Getsockname(ls[0].FD())
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := sa.(*unix.SockaddrUnix); !ok || u.Name != name {
		t.Errorf("bound to %#v, want %s", sa, name)
	}
	c, err := net.Dial("unixpacket", name)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "ctl.fifo")
	ls := openSpec(t, Spec{Unit: "ctl.socket", Listen: []Address{mustParse(t, FIFO, path)}, SocketMode: 0o620})
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Type() != fs.ModeNamedPipe || st.Mode().Perm() != 0o620 {
		t.Fatalf("fifo %v %v", st.Mode(), err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	w.Close()
	buf := make([]byte, 16)
	n, err := unix.Read(ls[0].FD(), buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Errorf("read %q %v", buf[:max(n, 0)], err)
	}
}

func TestNetlink(t *testing.T) {
	ls := openSpec(t, Spec{Unit: "nl.socket", Listen: []Address{
		mustParse(t, Netlink, "kobject-uevent 1"), mustParse(t, Netlink, "route 0"),
	}, ReceiveBuffer: 1 << 20})
	for i, want := range []int{unix.NETLINK_KOBJECT_UEVENT, unix.NETLINK_ROUTE} {
		if got := getInt(t, ls[i], unix.SOL_SOCKET, unix.SO_PROTOCOL); got != want {
			t.Errorf("%s: protocol %d, want %d", ls[i], got, want)
		}
	}
	sa, err := unix.Getsockname(ls[0].FD())
	if err != nil {
		t.Fatal(err)
	}
	if nl, ok := sa.(*unix.SockaddrNetlink); !ok || nl.Groups != 1 {
		t.Errorf("uevent socket bound to %#v, want group 1", sa)
	}
}

func TestSpecial(t *testing.T) {
	ls := openSpec(t, Spec{Unit: "null.socket", Listen: []Address{mustParse(t, Special, "/dev/null")}})
	var st unix.Stat_t
	if err := unix.Fstat(ls[0].FD(), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("special fd is not /dev/null: %v", err)
	}
	dir := t.TempDir()
	if _, err := Open(Spec{Unit: "d.socket", Listen: []Address{mustParse(t, Special, dir)}}); err == nil {
		t.Errorf("a directory accepted as listen-special")
	}
}

// FromSection reads a real unit file through the unit loader.
func TestFromSection(t *testing.T) {
	dir := t.TempDir()
	unitText := `[socket]
listen-stream = ["/run/vigil-test/echo.sock", "127.0.0.1:7777"]
listen-datagram = ["[::1]:7778"]
listen-netlink = ["kobject-uevent 1"]
socket-mode = "0600"
receive-buffer = "64K"
no-delay = true
file-descriptor-name = "echo"
`
	if err := os.WriteFile(filepath.Join(dir, "echo.socket"), []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := unitfile.Load(unitfile.Paths{dir}, "echo.socket", unitfile.Context{})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := FromSection("echo.socket", u.Socket)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range spec.Listen {
		got = append(got, string(a.Kind)+" "+a.String())
	}
	want := "stream /run/vigil-test/echo.sock|stream 127.0.0.1:7777|datagram [::1]:7778|netlink kobject-uevent 1"
	if strings.Join(got, "|") != want {
		t.Errorf("listens %q, want %q", strings.Join(got, "|"), want)
	}
	if spec.SocketMode != 0o600 || spec.ReceiveBuffer != 64<<10 || !spec.NoDelay || spec.FileDescriptorName != "echo" || spec.Backlog != 4096 || spec.BindIPv6Only != "default" {
		t.Errorf("spec %+v", spec)
	}
	pct := unitfile.Size{Percent: 10}
	if _, err := FromSection("x.socket", &unitfile.SocketSection{ListenStream: []string{"80"}, SendBuffer: &pct}); err == nil || !strings.Contains(err.Error(), "send-buffer") {
		t.Errorf("percent buffer: %v", err)
	}
	if _, err := FromSection("x.socket", &unitfile.SocketSection{ListenStream: []string{"localhost:99999"}}); err == nil || !strings.Contains(err.Error(), "port out of range") {
		t.Errorf("bad address: %v", err)
	}
}

func FuzzParseListen(f *testing.F) {
	for _, s := range []string{"8080", "127.0.0.1:80", "[::1]:80", "[fe80::1%eth0]:80", "/run/x.sock", "@x", "vsock:3:22",
		"kobject-uevent 1", "route", "localhost:99999", "[::1", ":80", "1.2.3.4:", "[]:1", "@", "/", "0"} {
		for _, k := range []string{"stream", "datagram", "seqpacket", "fifo", "netlink", "special"} {
			f.Add(k, s)
		}
	}
	f.Fuzz(func(t *testing.T, kind, value string) {
		a, err := ParseListen(Kind(kind), value)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", value)) {
				t.Fatalf("error %q does not name the value", err)
			}
			return
		}
		s := a.String()
		switch a.Family {
		case FamilyInet, FamilyInet6:
			if a.Port == 0 {
				t.Fatalf("port 0 accepted: %q", value)
			}
			// The display form parses back to the same address.
			b, err := ParseListen(a.Kind, s)
			if err != nil || b.IP != a.IP || b.Port != a.Port || b.Zone != a.Zone {
				t.Fatalf("%q displayed as %q, which reparses as %+v, %v", value, s, b, err)
			}
		case FamilyUnix:
			if len(a.Path) > maxUnixPath || a.Path == "@" {
				t.Fatalf("bad unix path accepted: %q", a.Path)
			}
		}
	})
}
