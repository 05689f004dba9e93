package notify

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// wait bounds every wait in these tests; a failure never hangs the run.
const wait = 10 * time.Second

// harness is a running loop with a notify socket and a channel of its
// message events.
type harness struct {
	loop   *observer.Loop
	sock   *Socket
	events chan *observer.Event
	logs   chan string
}

// start runs a loop and a socket at addr ("" for a fresh path). With run
// false the loop is not running, so nothing leaves the source's queue.
func start(t testing.TB, addr string, opts Options, run bool) *harness {
	t.Helper()
	if addr == "" {
		addr = filepath.Join(t.TempDir(), "notify")
	}
	h := &harness{events: make(chan *observer.Event, 4096), logs: make(chan string, 4096)}
	h.loop = observer.New(observer.Options{Logf: t.Logf})
	f, err := observer.ParseFilter("source=notify kind=message")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.loop.Register(observer.Observer{Guest: "test", Name: "notify", Filter: f, Notify: func(ev *observer.Event) {
		select {
		case h.events <- ev:
		default:
			t.Errorf("event channel full")
		}
	}}); err != nil {
		t.Fatal(err)
	}
	opts.Logf = func(format string, args ...any) {
		select {
		case h.logs <- fmt.Sprintf(format, args...):
		default:
		}
	}
	h.sock, err = Listen(h.loop, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	if run {
		go func() { h.loop.Run(ctx); close(stopped) }()
	} else {
		close(stopped)
	}
	t.Cleanup(func() {
		h.sock.Close()
		cancel()
		<-stopped
	})
	return h
}

func (h *harness) next(t *testing.T) (*observer.Event, *Message) {
	t.Helper()
	select {
	case ev := <-h.events:
		return ev, ev.Payload.(*Message)
	case <-time.After(wait):
		t.Fatalf("no notify event within %v; stats %+v", wait, h.sock.Stats())
	}
	return nil, nil
}

func (h *harness) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-h.events:
		t.Fatalf("unexpected event %v", ev)
	case <-time.After(d):
	}
}

// client is a raw unconnected datagram socket: Go's net package refuses
// WriteMsgUnix on a connected datagram socket.
type client struct {
	fd int
	to unix.Sockaddr
}

// dial makes a client of the harness's socket whose sends give up after
// the test's wait instead of blocking forever.
func (h *harness) dial(t testing.TB) client {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(wait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return client{fd: fd, to: &unix.SockaddrUnix{Name: h.sock.Addr()}}
}

// send retries EINTR: a blocking sendmsg is interrupted by the Go
// runtime's own signals, which says nothing about the socket.
func (c client) send(b, oob []byte) error {
	for {
		err := unix.Sendmsg(c.fd, b, oob, c.to, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

func systemdNotify(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed (Debian package systemd)")
	}
	return p
}

// Debian's systemd-notify claims its parent's PID (this test process) and,
// without --no-block, waits on a barrier: it returns only if the socket
// answered BARRIER=1.
func TestSystemdNotifyReadyStatus(t *testing.T) {
	bin := systemdNotify(t)
	h := start(t, "", Options{}, true)
	cmd := exec.Command(bin, "--ready", "--status=hi")
	cmd.Env = []string{h.sock.Env()}
	// An unanswered barrier times out after 5 s and systemd-notify then
	// exits 1 with "Failed to invoke barrier": its exit status tells, with
	// no clock (a loaded machine can take seconds just to start it).
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "barrier") {
		t.Fatalf("systemd-notify: %v: %s", err, out)
	}
	ev, m := h.next(t)
	if !m.Ready || m.Status == nil || *m.Status != "hi" {
		t.Errorf("message %+v, want READY=1 STATUS=hi", m)
	}
	if m.PID != os.Getpid() || ev.Attrs["pid"] != strconv.Itoa(os.Getpid()) {
		t.Errorf("sender PID %d (attr %s), want the parent %d", m.PID, ev.Attrs["pid"], os.Getpid())
	}
	if ev.Attrs["ready"] != "1" || ev.Attrs["status"] != "hi" || ev.Attrs["state"] != "ready" {
		t.Errorf("attrs %v", ev.Attrs)
	}
	if len(m.FDs) != 0 {
		t.Errorf("ready message carries %d fds", len(m.FDs))
	}
	// The barrier follows as its own message, answered by the loop.
	_, b := h.next(t)
	if !b.Barrier || len(b.FDs) != 0 {
		t.Errorf("second message %+v, want the barrier without fds", b)
	}
}

// With --pid=PID systemd-notify sends on behalf of PID (root may) and adds
// MAINPID; with --uid it sends as that user.
func TestSystemdNotifyOnBehalf(t *testing.T) {
	bin := systemdNotify(t)
	h := start(t, "", Options{}, true)
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	pid := sleeper.Process.Pid
	cmd := exec.Command(bin, "--no-block", "--ready", "--pid="+strconv.Itoa(pid), "--uid=65534", "WATCHDOG=1", "EXTEND_TIMEOUT_USEC=5000000")
	cmd.Env = []string{h.sock.Env()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-notify: %v: %s", err, out)
	}
	_, m := h.next(t)
	if m.PID != pid || m.MainPID != pid {
		t.Errorf("PID %d MAINPID %d, want %d", m.PID, m.MainPID, pid)
	}
	if m.UID != 65534 {
		t.Errorf("UID %d, want 65534", m.UID)
	}
	if !m.Ready || !m.Watchdog || m.ExtendTimeoutUSec != 5000000 {
		t.Errorf("message %+v", m)
	}
}

// An abstract NOTIFY_SOCKET ("@name") works with systemd-notify too.
func TestAbstractSocket(t *testing.T) {
	bin := systemdNotify(t)
	name := fmt.Sprintf("@vigil-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	h := start(t, name, Options{}, true)
	cmd := exec.Command(bin, "--no-block", "STOPPING=1", "STATUS=bye")
	cmd.Env = []string{"NOTIFY_SOCKET=" + name}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-notify: %v: %s", err, out)
	}
	_, m := h.next(t)
	if !m.Stopping || *m.Status != "bye" {
		t.Errorf("message %+v", m)
	}
}

// fdCount counts this process's open fds.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// FDs passed with FDSTORE=1 arrive open, working and close-on-exec.
func TestFDsArrive(t *testing.T) {
	h := start(t, "", Options{}, true)
	c := h.dial(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	oob := unix.UnixRights(int(w.Fd()))
	if err := c.send([]byte("FDSTORE=1\nFDNAME=pipe\nFDPOLL=0"), oob); err != nil {
		t.Fatal(err)
	}
	ev, m := h.next(t)
	if !m.FDStore || m.FDName != "pipe" || !m.FDNoPoll || len(m.FDs) != 1 || ev.Attrs["fds"] != "1" {
		t.Fatalf("message %+v attrs %v", m, ev.Attrs)
	}
	if m.PID != os.Getpid() || m.UID != os.Getuid() {
		t.Errorf("credentials %d/%d", m.PID, m.UID)
	}
	flags, err := unix.FcntlInt(m.FDs[0].Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd flags %#x (%v), want FD_CLOEXEC", flags, err)
	}
	if _, err := m.FDs[0].Write([]byte("through the store")); err != nil {
		t.Fatal(err)
	}
	m.Close()
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "through the store" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
}

// More fds than MaxFDs: the surplus is closed at once, the rest kept.
func TestTooManyFDs(t *testing.T) {
	h := start(t, "", Options{MaxFDs: 2}, true)
	c := h.dial(t)
	var fds []int
	for range 5 {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fds = append(fds, int(f.Fd()))
	}
	before := fdCount(t)
	if err := c.send([]byte("FDSTORE=1"), unix.UnixRights(fds...)); err != nil {
		t.Fatal(err)
	}
	_, m := h.next(t)
	if len(m.FDs) != 2 {
		t.Errorf("kept %d fds, want 2", len(m.FDs))
	}
	if got := fdCount(t); got != before+2 {
		t.Errorf("open fds %d after the message, want %d (2 kept, 3 closed)", got, before+2)
	}
	if st := h.sock.Stats(); st.TooManyFDs != 1 || st.FDsClosed != 3 {
		t.Errorf("stats %+v", st)
	}
	m.Close()
}

// Oversized, NUL-laden, empty and meaningless datagrams are rejected and
// counted; the socket goes on working.
func TestRejections(t *testing.T) {
	h := start(t, "", Options{}, true)
	c := h.dial(t)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := fdCount(t)
	send := func(b []byte, oob []byte) {
		if err := c.send(b, oob); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte("STATUS="+strings.Repeat("x", 5000)), unix.UnixRights(int(f.Fd())))
	send([]byte("READY=1\x00STATUS=x"), nil)
	send([]byte("\n\n"), nil)
	send([]byte("this is not an assignment\n=1\n1A=2"), nil)
	send([]byte("MAINPID=abc\nREADY=1\nWATCHDOG=bark\nFOO=bar"), nil)
	_, m := h.next(t)
	if !m.Ready || m.Malformed != 1 || len(m.Unknown) != 2 || m.MainPID != 0 {
		t.Errorf("message %+v: want READY=1, one malformed line, two unknown", m)
	}
	h.none(t, 100*time.Millisecond)
	st := h.sock.Stats()
	if st.Oversized != 1 || st.Garbage != 3 || st.Posted != 1 || st.Received != 5 || st.FDsClosed != 1 {
		t.Errorf("stats %+v", st)
	}
	if got := fdCount(t); got != before {
		t.Errorf("open fds %d, want %d: the oversized datagram's fd leaked", got, before)
	}
	// The exact 4096-byte maximum passes.
	send([]byte("STATUS="+strings.Repeat("y", 4096-len("STATUS="))), nil)
	if _, m := h.next(t); m.Status == nil || len(*m.Status) != 4089 {
		t.Errorf("maximum-size datagram not delivered whole")
	}
}

// A flood with the loop stalled: the sender never blocks for long (the
// reader keeps draining), the source drops what does not fit and closes
// the dropped messages' fds, and the loop still answers.
func TestFloodDropsNotBlocks(t *testing.T) {
	h := start(t, "", Options{QueueLimit: 64}, false)
	c := h.dial(t)
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := fdCount(t)
	const n = 5000
	for i := range n {
		if err := c.send([]byte("WATCHDOG=1\nSTATUS="+strconv.Itoa(i)), unix.UnixRights(int(f.Fd()))); err != nil {
			t.Fatalf("send %d blocked or failed: %v; stats %+v", i, err, h.sock.Stats())
		}
	}
	deadline := time.Now().Add(wait)
	for h.sock.Stats().Received < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := h.sock.Stats()
	if st.Received != n || st.Posted != 64 || st.Dropped != n-64 || st.FDsClosed != n-64 {
		t.Fatalf("stats %+v: want %d received, 64 posted, the rest dropped with their fds closed", st, n)
	}
	if got := fdCount(t); got != before+64 {
		t.Errorf("open fds %d, want %d (only the queued messages' fds)", got, before+64)
	}
	// Now run the loop: the queued 64 arrive, and the loop answers calls.
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { h.loop.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	for range 64 {
		_, m := h.next(t)
		m.Close()
	}
	callCtx, cancelCall := context.WithTimeout(context.Background(), wait)
	defer cancelCall()
	if err := h.loop.Call(callCtx, func() {}); err != nil {
		t.Fatalf("loop did not answer after the flood: %v", err)
	}
	if got := fdCount(t); got != before {
		t.Errorf("open fds %d, want %d after closing the messages", got, before)
	}
}

// A datagram from a socket the kernel gives no credentials is impossible
// with SO_PASSCRED; a stale socket file is replaced, any other file is not.
func TestSocketPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "notify")
	h := start(t, path, Options{}, true)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o777 || st.Mode().Type() != os.ModeSocket {
		t.Errorf("mode %v, want socket 0777", st.Mode())
	}
	passcred, err := func() (int, error) {
		rc, err := h.sock.conn.SyscallConn()
		if err != nil {
			return 0, err
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED) })
		return v, gerr
	}()
	if err != nil || passcred != 1 {
		t.Errorf("SO_PASSCRED = %d, %v", passcred, err)
	}
	h.sock.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after Close: %v", err)
	}
	// A stale socket (bound, never removed) is replaced.
	stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	s2, err := Listen(observer.New(observer.Options{}), path, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s2.Close()
	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, []byte("x"), 0o644)
	if _, err := Listen(observer.New(observer.Options{}), regular, Options{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if _, err := Listen(observer.New(observer.Options{}), "relative/notify", Options{}); err == nil {
		t.Errorf("relative path accepted")
	}
}

// BARRIER=1 with one fd: the fd is closed (the client sees POLLHUP) only
// when the loop dispatches the barrier, after every earlier message.
func TestBarrierAnsweredByLoop(t *testing.T) {
	h := start(t, "", Options{}, false)
	c := h.dial(t)
	if err := c.send([]byte("STATUS=before"), nil); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := c.send([]byte("BARRIER=1"), unix.UnixRights(int(w.Fd()))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	hup := func(timeout time.Duration) bool {
		// A signal to this thread ends poll early (EINTR, never restarted):
		// poll again for what is left.
		for deadline := time.Now().Add(timeout); ; {
			fds := []unix.PollFd{{Fd: int32(r.Fd()), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(max(time.Until(deadline), 0)/time.Millisecond))
			if err == unix.EINTR && time.Now().Before(deadline) {
				continue
			}
			if err != nil && err != unix.EINTR {
				t.Fatal(err)
			}
			return n == 1 && fds[0].Revents&unix.POLLHUP != 0
		}
	}
	if hup(200 * time.Millisecond) {
		t.Fatal("barrier answered while the loop was not running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { h.loop.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	if !hup(wait) {
		t.Fatal("barrier not answered after the loop ran")
	}
	if _, m := h.next(t); m.Status == nil || *m.Status != "before" {
		t.Errorf("first message %+v", m)
	}
	if _, m := h.next(t); !m.Barrier || len(m.FDs) != 0 {
		t.Errorf("barrier message %+v", m)
	}
	// A barrier without an fd is a bad barrier: counted, still delivered.
	if err := c.send([]byte("BARRIER=1"), nil); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	if st := h.sock.Stats(); st.BadBarriers != 1 {
		t.Errorf("stats %+v", st)
	}
}
