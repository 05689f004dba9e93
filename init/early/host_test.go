package early

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type terminalReport struct {
	Pty        string
	Fds        [3]string
	SessionID  int
	PID        int
	Foreground int
	Canonical  bool
	Echo       bool
}

func helperTerminal() (any, error) {
	// Closing the master at the end hangs the pty up, which sends SIGHUP
	// to us, its session leader.
	signal.Ignore(syscall.SIGHUP)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer master.Close()
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return nil, err
	}
	pty := "/dev/pts/" + strconv.Itoa(n)
	// Mess the settings up first, so SaneTerminal has work to do.
	if fd, err := unix.Open(pty, unix.O_RDWR|unix.O_NOCTTY, 0); err == nil {
		if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			t.Lflag &^= unix.ICANON | unix.ECHO
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
		}
		unix.Close(fd)
	}
	if err := SetupTerminal(pty); err != nil {
		return nil, err
	}
	rep := terminalReport{Pty: pty, PID: os.Getpid()}
	for i := range rep.Fds {
		rep.Fds[i], _ = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", i))
	}
	rep.SessionID, _ = unix.IoctlGetInt(0, unix.TIOCGSID)
	rep.Foreground, _ = unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if t, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		rep.Canonical = t.Lflag&unix.ICANON != 0
		rep.Echo = t.Lflag&unix.ECHO != 0
	}
	return rep, nil
}

func TestSetupTerminalOnPty(t *testing.T) {
	var rep terminalReport
	runInHelper(t, "terminal", "x", 0, &rep)
	for i, fd := range rep.Fds {
		if fd != rep.Pty {
			t.Errorf("fd %d -> %q, want %s", i, fd, rep.Pty)
		}
	}
	if rep.SessionID != rep.PID || rep.Foreground != rep.PID {
		t.Errorf("pty session %d, foreground %d; want both %d (the helper is session leader with the pty as controlling tty)", rep.SessionID, rep.Foreground, rep.PID)
	}
	if !rep.Canonical || !rep.Echo {
		t.Errorf("terminal not sane: canonical %v echo %v", rep.Canonical, rep.Echo)
	}
}

type hostnameReport struct {
	Cases []hostnameCase
}

type hostnameCase struct {
	File     string
	Before   string
	Returned string
	Kernel   string
	Err      string
}

func helperHostname(root string) (any, error) {
	var rep hostnameReport
	run := func(file *string, before string) {
		path := filepath.Join(root, "etc/hostname")
		os.Remove(path)
		if file != nil {
			if err := os.WriteFile(path, []byte(*file), 0o644); err != nil {
				panic(err)
			}
		}
		_ = unix.Sethostname([]byte(before))
		c := hostnameCase{Before: before}
		if file != nil {
			c.File = *file
		}
		name, err := SetHostname(root)
		c.Returned = name
		if err != nil {
			c.Err = err.Error()
		}
		c.Kernel, _ = os.Hostname()
		rep.Cases = append(rep.Cases, c)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return nil, err
	}
	good := "# a comment\n\n  vigil-test.example  \nsecond-line\n"
	bad := "bad_name!\n"
	run(&good, "old")
	run(&bad, "old")
	run(nil, "(none)")
	run(nil, "kept")
	return rep, nil
}

func TestSetHostnameInUTSNamespace(t *testing.T) {
	before, _ := os.Hostname()
	var rep hostnameReport
	runInHelper(t, "hostname", t.TempDir(), syscall.CLONE_NEWUTS, &rep)
	want := []struct {
		returned, kernel string
		wantErr          bool
	}{
		{"vigil-test.example", "vigil-test.example", false},
		{"old", "old", true},
		{FallbackHostname, FallbackHostname, false},
		{"kept", "kept", false},
	}
	if len(rep.Cases) != len(want) {
		t.Fatalf("%d cases", len(rep.Cases))
	}
	for i, w := range want {
		c := rep.Cases[i]
		if c.Returned != w.returned || c.Kernel != w.kernel || (c.Err != "") != w.wantErr {
			t.Errorf("file %q before %q: returned %q kernel %q err %q; want %q %q err=%v", c.File, c.Before, c.Returned, c.Kernel, c.Err, w.returned, w.kernel, w.wantErr)
		}
	}
	if after, _ := os.Hostname(); after != before {
		t.Errorf("host's name changed from %q to %q", before, after)
	}
}

type loopbackReport struct {
	UpBefore, UpAfter bool
	Echo              string
	Second            string
}

func loUp() (bool, error) {
	iface, err := net.InterfaceByName("lo")
	if err != nil {
		return false, err
	}
	return iface.Flags&net.FlagUp != 0, nil
}

func helperLoopback() (any, error) {
	var rep loopbackReport
	var err error
	if rep.UpBefore, err = loUp(); err != nil {
		return nil, err
	}
	if err := LoopbackUp(); err != nil {
		return nil, err
	}
	if rep.UpAfter, err = loUp(); err != nil {
		return nil, err
	}
	// 127.0.0.1 answers once lo is up.
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.WriteTo([]byte("ping"), conn.LocalAddr()); err != nil {
		return nil, err
	}
	buf := make([]byte, 16)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return nil, err
	}
	rep.Echo = string(buf[:n])
	if err := LoopbackUp(); err != nil {
		rep.Second = err.Error()
	}
	return rep, nil
}

func TestLoopbackUpInNetNamespace(t *testing.T) {
	var rep loopbackReport
	runInHelper(t, "loopback", "x", syscall.CLONE_NEWNET, &rep)
	if rep.UpBefore {
		t.Error("lo was up in a fresh namespace")
	}
	if !rep.UpAfter || rep.Echo != "ping" {
		t.Errorf("after LoopbackUp: up %v, echo %q", rep.UpAfter, rep.Echo)
	}
	if rep.Second != "" {
		t.Errorf("second LoopbackUp: %s", rep.Second)
	}
}

func TestMachineIDGenerateAndKeep(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := machineID(root, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ParseMachineID(id); !ok {
		t.Fatalf("generated id %q invalid", id)
	}
	if id[12] != '4' {
		t.Errorf("random id %s is not a v4 UUID", id)
	}
	data, err := os.ReadFile(filepath.Join(root, "etc/machine-id"))
	if err != nil || string(data) != id+"\n" {
		t.Fatalf("file holds %q (%v), want %q", data, err, id)
	}
	again, err := machineID(root, false)
	if err != nil || again != id {
		t.Errorf("second call %q %v, want the stored %q", again, err, id)
	}
	// An invalid file is replaced, by the DMI UUID when trusted.
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("uninitialized\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	dmi := filepath.Join(root, "sys/class/dmi/id")
	if err := os.MkdirAll(dmi, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dmi, "product_uuid"), []byte("4C4C4544-0042-3510-8052-B4C04F4E4E32\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	fromDMI, err := machineID(root, true)
	if err != nil || fromDMI != "4c4c4544004235108052b4c04f4e4e32" {
		t.Errorf("from DMI: %q %v", fromDMI, err)
	}
	// Not trusted (a container): random instead.
	os.Remove(filepath.Join(root, "etc/machine-id"))
	if other, _ := machineID(root, false); other == fromDMI {
		t.Error("DMI UUID used although untrusted")
	}
	// /etc missing entirely: error, but an ID.
	bare := t.TempDir()
	if id, err := machineID(bare, false); err == nil || id == "" {
		t.Errorf("missing /etc: %q %v", id, err)
	}
}

type machineIDReport struct {
	ID, EtcContent, RunContent, Err string
}

func helperMachineIDReadOnly(root string) (any, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	etc := filepath.Join(root, "etc")
	if err := unix.Mount(etc, etc, "", unix.MS_BIND, ""); err != nil {
		return nil, err
	}
	if err := unix.Mount("", etc, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "probe"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		return nil, fmt.Errorf("etc not read-only: %v", err)
	}
	var rep machineIDReport
	id, err := machineID(root, false)
	rep.ID = id
	if err != nil {
		rep.Err = err.Error()
	}
	b, _ := os.ReadFile(filepath.Join(etc, "machine-id"))
	rep.EtcContent = string(b)
	b, _ = os.ReadFile(filepath.Join(root, "run/machine-id"))
	rep.RunContent = string(b)
	return rep, nil
}

func TestMachineIDReadOnlyEtc(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An empty file: systemd's "first boot" marker, to be covered by a bind mount.
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	var rep machineIDReport
	runInHelper(t, "machine-id-ro", root, syscall.CLONE_NEWNS, &rep)
	if rep.Err != "" {
		t.Fatalf("error: %s", rep.Err)
	}
	if _, ok := ParseMachineID(rep.ID); !ok || rep.EtcContent != rep.ID+"\n" || rep.RunContent != rep.ID+"\n" {
		t.Errorf("report %+v", rep)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(data) != 0 {
		t.Errorf("the host sees %q in the read-only file", data)
	}
}

func TestSeedRandom(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/urandom", filepath.Join(root, "dev/urandom")); err != nil {
		t.Fatal(err)
	}
	if n, err := SeedRandom(root); n != 0 || err != nil {
		t.Errorf("no seed files: %d %v", n, err)
	}
	seeds := map[string][]byte{
		"var/lib/systemd/random-seed": bytes.Repeat([]byte{0xAB}, 512),
		"var/lib/vigil/random-seed":   bytes.Repeat([]byte{0xCD}, 100),
	}
	for rel, data := range seeds {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := SeedRandom(root)
	if err != nil || n != 2 {
		t.Fatalf("SeedRandom = %d, %v", n, err)
	}
	for rel, old := range seeds {
		p := filepath.Join(root, rel)
		fresh, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(fresh) != len(old) || bytes.Equal(fresh, old) {
			t.Errorf("%s not refreshed: %d bytes, same %v", rel, len(fresh), bytes.Equal(fresh, old))
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", rel, st.Mode())
		}
	}
	// Without a urandom to write to, the error says so.
	os.Remove(filepath.Join(root, "dev/urandom"))
	if _, err := SeedRandom(root); err == nil || !strings.Contains(err.Error(), "urandom") {
		t.Errorf("missing urandom: %v", err)
	}
}

func TestDetectVirtualizationMatchesSystemd(t *testing.T) {
	got := DetectVirtualization()
	vm := DetectVM()
	name, in := DetectContainer()
	t.Logf("virtualization %q, vm %q, container %q %v", got, vm, name, in)
	if _, err := exec.LookPath("systemd-detect-virt"); err != nil {
		t.Skip("systemd-detect-virt not installed")
	}
	for _, c := range []struct {
		args []string
		ours string
	}{{nil, got}, {[]string{"--vm"}, vm}, {[]string{"--container"}, name}} {
		out, _ := exec.Command("systemd-detect-virt", c.args...).Output()
		if want := strings.TrimSpace(string(out)); want != c.ours {
			t.Errorf("systemd-detect-virt %v says %q, we say %q", c.args, want, c.ours)
		}
	}
}

func TestDetectContainerFromFiles(t *testing.T) {
	root := t.TempDir()
	if name, in := detectContainer(root, nil, true); in || name != VirtNone {
		t.Errorf("empty root: %s %v", name, in)
	}
	if name, in := detectContainer(root, nil, false); !in || name != VirtContainerOther {
		t.Errorf("no CAP_SYS_ADMIN: %s %v", name, in)
	}
	if name, _ := detectContainer(root, []byte("PATH=/bin\x00container=lxc\x00"), true); name != "lxc" {
		t.Errorf("env lxc: %s", name)
	}
	if name, _ := detectContainer(root, []byte("container=oci"), true); name != "docker" {
		t.Errorf("env oci: %s", name)
	}
	os.WriteFile(filepath.Join(root, ".dockerenv"), nil, 0o644)
	if name, _ := detectContainer(root, nil, true); name != "docker" {
		t.Errorf(".dockerenv: %s", name)
	}
	os.MkdirAll(filepath.Join(root, "run"), 0o755)
	os.WriteFile(filepath.Join(root, "run/.containerenv"), nil, 0o644)
	if name, _ := detectContainer(root, nil, true); name != "podman" {
		t.Errorf(".containerenv: %s", name)
	}
}

func TestDetectVMFromFiles(t *testing.T) {
	root := t.TempDir()
	none := func() (bool, string) { return false, "" }
	if got := detectVM(root, none); got != VirtNone {
		t.Errorf("nothing: %s", got)
	}
	if got := detectVM(root, func() (bool, string) { return true, "KVMKVMKVM\x00\x00\x00" }); got != "kvm" {
		t.Errorf("cpuid kvm: %s", got)
	}
	if got := detectVM(root, func() (bool, string) { return true, "unknownvendr" }); got != VirtVMOther {
		t.Errorf("unknown hypervisor: %s", got)
	}
	dmi := filepath.Join(root, "sys/class/dmi/id")
	os.MkdirAll(dmi, 0o755)
	os.WriteFile(filepath.Join(dmi, "sys_vendor"), []byte("QEMU\n"), 0o644)
	if got := detectVM(root, none); got != "qemu" {
		t.Errorf("dmi qemu: %s", got)
	}
	if got := detectVM(root, func() (bool, string) { return true, "KVMKVMKVM\x00\x00\x00" }); got != "kvm" {
		t.Errorf("qemu dmi with kvm cpuid: %s (systemd says kvm)", got)
	}
	os.WriteFile(filepath.Join(dmi, "product_name"), []byte("VirtualBox\n"), 0o644)
	if got := detectVM(root, func() (bool, string) { return true, "KVMKVMKVM\x00\x00\x00" }); got != "oracle" {
		t.Errorf("virtualbox: %s", got)
	}
}

// TestUptimeAgreesWithProc brackets Uptime between two reads of
// /proc/uptime (10 ms steps): no tolerance for how long the reads take on
// a loaded machine, only for the file's rounding down.
func TestUptimeAgreesWithProc(t *testing.T) {
	procUptime := func() time.Duration {
		t.Helper()
		data, err := os.ReadFile("/proc/uptime")
		if err != nil {
			t.Skip(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Split(bufio.ScanWords)
		sc.Scan()
		secs, err := strconv.ParseFloat(sc.Text(), 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(secs * float64(time.Second))
	}
	before := procUptime()
	up, err := Uptime()
	if err != nil {
		t.Fatal(err)
	}
	after := procUptime()
	if up < before || up > after+10*time.Millisecond {
		t.Errorf("Uptime %v, not between the /proc/uptime reads before (%v) and after (%v)", up, before, after)
	}
}

func TestValidHostname(t *testing.T) {
	for name, want := range map[string]bool{
		"localhost": true, "a.b-c.d": true, "x.": true, "": false, ".a": false, "-a": false,
		"a..b": false, "a_b": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false, "ü": false,
	} {
		if got := ValidHostname(name); got != want {
			t.Errorf("ValidHostname(%q) = %v", name, got)
		}
	}
}

func FuzzParseIDs(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef\n")
	f.Add("4C4C4544-0042-3510-8052-B4C04F4E4E32")
	f.Add("# c\n\nhost.example\n")
	f.Add(strings.Repeat("0", 32))
	f.Fuzz(func(t *testing.T, s string) {
		if id, ok := ParseMachineID(s); ok {
			if _, err := hex.DecodeString(id); err != nil || len(id) != 32 {
				t.Fatalf("accepted %q", id)
			}
		}
		if id, ok := parseProductUUID(s); ok {
			if _, ok := ParseMachineID(id); !ok {
				t.Fatalf("product UUID %q gave invalid machine ID %q", s, id)
			}
		}
		name, err := parseHostname(strings.NewReader(s))
		if err == nil && name != "" && (strings.HasPrefix(name, "#") || strings.TrimSpace(name) != name) {
			t.Fatalf("hostname %q from %q", name, s)
		}
		if ValidHostname(name) && len(strings.TrimSuffix(name, ".")) > 64 {
			t.Fatalf("too long accepted")
		}
	})
}
