package units

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/units/api"
)

// lineSink is a LogSink that also captures process output, line by line.
type lineSink struct {
	mu    sync.Mutex
	lines map[string][]string
}

func newLineSink() *lineSink { return &lineSink{lines: map[string][]string{}} }

func (s *lineSink) Append(unit, stream, text string) {
	s.mu.Lock()
	s.lines[unit] = append(s.lines[unit], stream+": "+text)
	s.mu.Unlock()
}

func (s *lineSink) Capture(unit string, pid int, stream string, r *os.File, echo bool) {
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			s.Append(unit, stream, sc.Text())
		}
	}()
}

func (s *lineSink) text(unit string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines[unit], "\n")
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// probe is a shell command line that appends "NAME:open" or "NAME:closed"
// to DIR/order, as the socket file exists or not, and says so on stdout.
func probe(name string) string {
	return fmt.Sprintf(`/bin/sh -c "if test -S @DIR@/cmd.sock; then echo %[1]s:open; else echo %[1]s:closed; fi >> @DIR@/order; echo said by %[1]s"`, name)
}

// The four commands run where systemd runs them: start-pre before the
// socket exists, start-post after it is bound, stop-pre while it is still
// there, stop-post after it is gone; their output is in the socket's log.
func TestSocketCommandsRunInOrder(t *testing.T) {
	sink := newLineSink()
	h := newHarnessWith(t, map[string]string{
		"cmd.socket": "[socket]\nlisten-stream = [\"@DIR@/cmd.sock\"]\nremove-on-stop = true\n" +
			"exec-start-pre = '" + probe("start-pre") + "'\n" +
			"exec-start-post = '" + probe("start-post") + "'\n" +
			"exec-stop-pre = '" + probe("stop-pre") + "'\n" +
			"exec-stop-post = '" + probe("stop-post") + "'\n",
	}, func(o *Options) { o.Logs = sink })
	if res, why := h.start("cmd.socket"); res != api.ResultDone {
		t.Fatalf("start: %s %s\n%s", res, why, h.logText())
	}
	if a, s := h.state("cmd.socket"); a != "active" || s != "listening" {
		t.Fatalf("after start: %s (%s)", a, s)
	}
	if res, why := h.stop("cmd.socket"); res != api.ResultDone {
		t.Fatalf("stop: %s %s", res, why)
	}
	if a, s := h.state("cmd.socket"); a != "inactive" || s != "dead" {
		t.Fatalf("after stop: %s (%s)\n%s", a, s, h.logText())
	}
	want := "start-pre:closed\nstart-post:open\nstop-pre:open\nstop-post:closed\n"
	if got := readFileOr(h.path("order")); got != want {
		t.Errorf("commands saw:\n%swant:\n%s", got, want)
	}
	waitUntil(t, "the commands' output in the socket's log", func() bool {
		log := sink.text("cmd.socket")
		return strings.Contains(log, "stdout: said by start-pre") && strings.Contains(log, "stdout: said by stop-post")
	})
	if st := h.status("cmd.socket"); st.Result != "success" {
		t.Errorf("result %q", st.Result)
	}
	// Each command's run is recorded, as for a service's ExecStartPre=.
	var runs map[string][]ExecRun
	h.do(func() { runs, _ = h.m.SocketCommands("cmd.socket") })
	for _, kind := range []string{"ExecStartPre", "ExecStartPost", "ExecStopPre", "ExecStopPost"} {
		r := runs[kind]
		if len(r) != 1 || r[0].PID <= 0 || r[0].Exit.IsZero() || r[0].Code != 1 || r[0].Status != 0 || r[0].Path != "/bin/sh" {
			t.Errorf("%s: %+v, want one clean run of /bin/sh", kind, r)
		}
	}
}

// A failing start-pre fails the start with result exit-code and never
// opens the socket; a '-' command's failure is ignored. A failing
// start-post closes the socket again through stop-pre and stop-post.
func TestSocketStartCommandFailures(t *testing.T) {
	h := newHarness(t, map[string]string{
		"pre.socket":     "[socket]\nlisten-stream = [\"@DIR@/pre.sock\"]\nexec-start-pre = \"/bin/false\"\nexec-stop-post = \"/bin/touch @DIR@/pre.stop-post\"\n",
		"ignored.socket": "[socket]\nlisten-stream = [\"@DIR@/ignored.sock\"]\nexec-start-pre = [\"-/bin/false\", \"/bin/true\"]\n",
		"post.socket": "[socket]\nlisten-stream = [\"@DIR@/post.sock\"]\nremove-on-stop = true\nexec-start-post = \"/bin/sh -c 'exit 3'\"\n" +
			"exec-stop-pre = \"/bin/touch @DIR@/post.stop-pre\"\nexec-stop-post = \"/bin/touch @DIR@/post.stop-post\"\n",
	})
	res, why := h.start("pre.socket")
	if res != api.ResultFailed || !strings.Contains(why, "exec-start-pre") {
		t.Errorf("pre.socket start: %s %q, want failed naming exec-start-pre", res, why)
	}
	if st := h.status("pre.socket"); st.Active != "failed" || st.Result != "exit-code" {
		t.Errorf("pre.socket: %s result %q, want failed with exit-code", st.Active, st.Result)
	}
	if _, err := os.Stat(h.path("pre.sock")); err == nil {
		t.Error("pre.socket bound its socket although start-pre failed")
	}
	// systemd goes from a failed start-pre to final-sigterm, not through
	// stop-post: nothing was opened to close.
	if _, err := os.Stat(h.path("pre.stop-post")); err == nil {
		t.Error("stop-post ran after a failed start-pre")
	}

	if res, why := h.start("ignored.socket"); res != api.ResultDone {
		t.Errorf("ignored.socket: %s %s", res, why)
	}
	if c, err := net.Dial("unix", h.path("ignored.sock")); err != nil {
		t.Errorf("ignored.socket is not listening: %v", err)
	} else {
		c.Close()
	}

	res, why = h.start("post.socket")
	if res != api.ResultFailed || !strings.Contains(why, "exec-start-post") {
		t.Errorf("post.socket start: %s %q, want failed naming exec-start-post", res, why)
	}
	if st := h.status("post.socket"); st.Active != "failed" || st.Result != "exit-code" {
		t.Errorf("post.socket: %s result %q, want failed with exit-code", st.Active, st.Result)
	}
	for _, f := range []string{"post.stop-pre", "post.stop-post"} {
		if _, err := os.Stat(h.path(f)); err != nil {
			t.Errorf("%s did not run after the failed start-post: %v", f, err)
		}
	}
	if _, err := os.Stat(h.path("post.sock")); err == nil {
		t.Error("post.socket left its socket file after failing")
	}
	// reset-failed and a start again work as ever.
	h.do(func() { h.m.ResetFailed([]string{"pre.socket"}) })
	if a, _ := h.state("pre.socket"); a != "inactive" {
		t.Errorf("after reset-failed: %s", a)
	}
}

// timeout-sec bounds each command: a hung start-pre is killed and the
// unit fails with result timeout.
func TestSocketCommandTimeout(t *testing.T) {
	h := newHarness(t, map[string]string{
		"slow.socket": "[socket]\nlisten-stream = [\"@DIR@/slow.sock\"]\ntimeout-sec = \"300ms\"\nexec-start-pre = \"/bin/sleep 60\"\n",
	})
	done := h.startAsync("slow.socket")
	var pid int
	waitUntil(t, "the start-pre command", func() bool {
		h.do(func() {
			if k, ok := h.m.Unit("slow.socket").behaviour.(*socketUnit); ok {
				pid = k.ctl.pid
			}
		})
		return pid != 0
	})
	if a, s := h.state("slow.socket"); a != "activating" || s != "start-pre" {
		t.Errorf("while start-pre runs: %s (%s)", a, s)
	}
	select {
	case res := <-done:
		if !strings.HasPrefix(res, api.ResultFailed) {
			t.Errorf("start: %s", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the start did not end")
	}
	if st := h.status("slow.socket"); st.Active != "failed" || st.Result != "timeout" {
		t.Errorf("slow.socket: %s result %q, want failed with timeout", st.Active, st.Result)
	}
	waitUntil(t, "the hung command to be killed", func() bool { return !pidAlive(pid) })
}

// Stopping a socket while its start-pre runs kills the command; as in
// systemd's socket_sigchld_event the killed command's exit is the result:
// the stop job is done, the unit failed with result "signal". A start
// asked for meanwhile waits for the stop and then runs.
func TestSocketStopDuringStartPre(t *testing.T) {
	h := newHarness(t, map[string]string{
		"wait.socket": "[socket]\nlisten-stream = [\"@DIR@/wait.sock\"]\nexec-start-pre = \"/bin/sh -c 'test -e @DIR@/go || exec sleep 60'\"\n" +
			"exec-stop-pre = \"/bin/sleep 0.3\"\n",
	})
	h.startAsync("wait.socket")
	waitUntil(t, "start-pre", func() bool { _, s := h.state("wait.socket"); return s == "start-pre" })
	if res, why := h.stop("wait.socket"); res != api.ResultDone {
		t.Fatalf("stop: %s %s", res, why)
	}
	if st := h.status("wait.socket"); st.Active != "failed" || st.Result != "signal" {
		t.Errorf("after a stop during start-pre: %s result %q, want failed with signal\n%s", st.Active, st.Result, h.logText())
	}
	// A start during stop-pre: the start job waits, then the unit listens.
	os.WriteFile(h.path("go"), nil, 0o644)
	if res, why := h.start("wait.socket"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	h.do(func() { h.m.Enqueue("wait.socket", api.JobStop, api.ModeReplace) })
	waitUntil(t, "stop-pre", func() bool { _, s := h.state("wait.socket"); return s == "stop-pre" })
	if res, why := h.start("wait.socket"); res != api.ResultDone {
		t.Fatalf("start during stop-pre: %s %s", res, why)
	}
	if a, s := h.state("wait.socket"); a != "active" || s != "listening" {
		t.Errorf("after a start during stop-pre: %s (%s)", a, s)
	}
}

// A stop during start-post kills the command the same way (failed,
// "signal", the stop-post commands still run); a '-' command killed by a
// stop is not a failure, and the unit ends dead.
func TestSocketStopKillsStartCommandResult(t *testing.T) {
	h := newHarness(t, map[string]string{
		"post.socket": "[socket]\nlisten-stream = [\"@DIR@/post.sock\"]\nexec-start-post = \"/bin/sleep 60\"\n" +
			"exec-stop-post = \"/bin/sh -c 'echo ran > @DIR@/stop-post'\"\n",
		"dash.socket": "[socket]\nlisten-stream = [\"@DIR@/dash.sock\"]\nexec-start-pre = \"-/bin/sleep 60\"\n",
	})
	for _, c := range []struct{ unit, sub, active, result string }{
		{"post.socket", "start-post", "failed", "signal"},
		{"dash.socket", "start-pre", "inactive", "success"},
	} {
		h.startAsync(c.unit)
		waitUntil(t, c.unit+" "+c.sub, func() bool { _, s := h.state(c.unit); return s == c.sub })
		if res, why := h.stop(c.unit); res != api.ResultDone {
			t.Fatalf("stop %s: %s %s", c.unit, res, why)
		}
		if st := h.status(c.unit); st.Active != c.active || st.Result != c.result {
			t.Errorf("%s stopped during %s: %s result %q, want %s with %s\n%s", c.unit, c.sub, st.Active, st.Result, c.active, c.result, h.logText())
		}
	}
	if _, err := os.Stat(h.path("stop-post")); err != nil {
		t.Errorf("exec-stop-post after a stop during start-post: %v", err)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// 200 start/stop rounds of a socket unit leave the observer loop with the
// sources it had, and no goroutine or fd behind.
func TestSocketStartStopDoesNotLeak(t *testing.T) {
	h := newHarness(t, map[string]string{
		"cycle.socket": "[unit]\nstart-limit-burst = 0\n[socket]\nlisten-stream = [\"@DIR@/cycle.sock\"]\n",
	})
	cycle := func() {
		if res, why := h.start("cycle.socket"); res != api.ResultDone {
			t.Fatalf("start: %s %s", res, why)
		}
		if res, why := h.stop("cycle.socket"); res != api.ResultDone {
			t.Fatalf("stop: %s %s", res, why)
		}
	}
	cycle() // the shared source and the first-use allocations
	sources, goroutines, fds := len(h.loop.Sources()), runtime.NumGoroutine(), openFDs(t)
	for i := 0; i < 200; i++ {
		cycle()
		if n := len(h.loop.Sources()); n != sources {
			t.Fatalf("round %d: %d observer sources, %d after the first round", i, n, sources)
		}
	}
	if n := runtime.NumGoroutine(); n > goroutines+5 {
		t.Errorf("%d goroutines after 200 rounds, %d after the first", n, goroutines)
	}
	if n := openFDs(t); n > fds+2 {
		t.Errorf("%d open fds after 200 rounds, %d after the first", n, fds)
	}
	// Still a working socket.
	cycle()
	if res, _ := h.start("cycle.socket"); res != api.ResultDone {
		t.Fatal("last start failed")
	}
	c, err := net.Dial("unix", h.path("cycle.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// instanceNames lists the live instances of a template prefix.
func (h *harness) instanceNames(prefix string) []string {
	var out []string
	h.do(func() {
		for _, u := range h.m.Units() {
			if strings.HasPrefix(u.Name, prefix+"@") && u.Name != prefix+"@.service" {
				out = append(out, u.Name)
			}
		}
	})
	return out
}

// Accept = true: instances are named as systemd names them, and with
// standard-input = "socket" alone the service's output goes back on the
// connection (standard-output defaults to inherit), not to the log. A
// refused connection does not use up an instance number.
func TestSocketAcceptInstanceNamesAndOutput(t *testing.T) {
	h := newHarness(t, map[string]string{
		"echo@.service": "[service]\nexec-start = [\"/bin/sh\", \"-c\", \"echo hello from %i; read line; echo bye; echo oops >&2\"]\n" +
			"standard-input = \"socket\"\n",
		"local.socket":   "[socket]\nlisten-stream = [\"@DIR@/local.sock\"]\naccept = true\n",
		"local@.service": "[service]\nexec-start = [\"/bin/sh\", \"-c\", \"echo I am %i; read line\"]\nstandard-input = \"socket\"\n",
	})
	// The port is free when freeTCPPort looks, but a test of another
	// package may take it (an outgoing connection's local port, say)
	// before the socket unit binds it: then another port is tried.
	var port int
	for attempt := 1; ; attempt++ {
		port = freeTCPPort(t)
		h.write(map[string]string{"echo.socket": "[socket]\nlisten-stream = [\"127.0.0.1:" + strconv.Itoa(port) + "\"]\naccept = true\nmax-connections = 1\n"})
		h.do(func() { h.m.Reload() })
		taken := strings.Count(h.logText(), "already in use")
		res, why := h.start("echo.socket")
		if res == api.ResultDone {
			break
		}
		if attempt == 10 || strings.Count(h.logText(), "already in use") == taken {
			t.Fatalf("start echo.socket: %s %s\n%s", res, why, h.logText())
		}
		h.do(func() { h.m.ResetFailed([]string{"echo.socket"}) })
	}
	if res, why := h.start("local.socket"); res != api.ResultDone {
		t.Fatalf("start local.socket: %s %s", res, why)
	}
	dial := func() (net.Conn, *bufio.Reader, string) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		local := c.LocalAddr().(*net.TCPAddr)
		return c, bufio.NewReader(c), fmt.Sprintf("127.0.0.1:%d-127.0.0.1:%d", port, local.Port)
	}
	c, r, addrs := dial()
	want := "echo@0-" + addrs + ".service"
	line, err := r.ReadString('\n')
	if err != nil || line != "hello from 0-"+addrs+"\n" {
		t.Fatalf("first line %q, %v; want the greeting naming instance 0-%s\n%s", line, err, addrs, h.logText())
	}
	if names := h.instanceNames("echo"); len(names) != 1 || names[0] != want {
		t.Errorf("instances %v, want [%s]", names, want)
	}
	// Over max-connections: refused, and not counted as accepted.
	refused, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	refused.SetDeadline(time.Now().Add(15 * time.Second))
	if n, err := refused.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Errorf("refused connection read %d bytes, %v", n, err)
	}
	refused.Close()
	fmt.Fprintln(c, "done")
	rest, _ := r.ReadString(0)
	if rest != "bye\noops\n" {
		t.Errorf("after the input the connection carried %q, want stdout and stderr: \"bye\\noops\\n\"", rest)
	}
	c.Close()
	waitUntil(t, "the first instance to go", func() bool { return len(h.instanceNames("echo")) == 0 })
	if got := h.prop("echo.socket", "NAccepted"); got != "1" {
		t.Errorf("NAccepted = %s after one served and one refused connection", got)
	}
	c, r, addrs = dial()
	defer c.Close()
	if line, _ := r.ReadString('\n'); line != "hello from 1-"+addrs+"\n" {
		t.Errorf("second instance said %q, want instance number 1 (refusals take no number)", line)
	}

	// A unix socket's instance is NR-PID-UID of the peer.
	u, err := net.Dial("unix", h.path("local.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(15 * time.Second))
	wantUnix := fmt.Sprintf("0-%d-%d", os.Getpid(), os.Getuid())
	if line, _ := bufio.NewReader(u).ReadString('\n'); line != "I am "+wantUnix+"\n" {
		t.Errorf("unix instance said %q, want %q", line, "I am "+wantUnix)
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// instanceOf on IPv6: a pair of IPv4-mapped addresses is written dotted,
// as systemd does; a real IPv6 pair as inet_ntop writes it, unbracketed.
func TestInstanceNameIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Skipf("no IPv6 listener: %v", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct{ dial, want string }{
		{"127.0.0.1", "7-127.0.0.1:%d-127.0.0.1:%d"},
		{"::1", "7-::1:%d-::1:%d"},
	} {
		c, err := net.Dial("tcp", net.JoinHostPort(tc.dial, strconv.Itoa(port)))
		if err != nil {
			t.Logf("dial %s: %v (skipped)", tc.dial, err)
			continue
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.(*net.TCPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		got, err := instanceOf(int(f.Fd()), 7)
		want := fmt.Sprintf(tc.want, port, c.LocalAddr().(*net.TCPAddr).Port)
		if err != nil || got != want {
			t.Errorf("from %s: %q, %v; want %q", tc.dial, got, err, want)
		}
		f.Close()
		s.Close()
		c.Close()
	}
}

// BenchmarkSocketStartStop is one start and one stop of a socket unit:
// bare, and with an exec-start-pre and an exec-stop-post (/bin/true each).
func BenchmarkSocketStartStop(b *testing.B) {
	h := newBenchUnits(b, map[string]string{
		"bare.socket": "[unit]\nstart-limit-burst = 0\n[socket]\nlisten-stream = [\"@DIR@/bare.sock\"]\n",
		"cmds.socket": "[unit]\nstart-limit-burst = 0\n[socket]\nlisten-stream = [\"@DIR@/cmds.sock\"]\n" +
			"exec-start-pre = \"/bin/true\"\nexec-stop-post = \"/bin/true\"\n",
	})
	for _, name := range []string{"bare.socket", "cmds.socket"} {
		b.Run(strings.TrimSuffix(name, ".socket"), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if res, why := h.start(name); res != api.ResultDone {
					b.Fatalf("start: %s %s", res, why)
				}
				if res, why := h.stop(name); res != api.ResultDone {
					b.Fatalf("stop: %s %s", res, why)
				}
			}
		})
	}
}
