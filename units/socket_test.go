package units

import (
	"bufio"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/units/api"
)

// buildGosd builds the go-systemd test service (testdata/gosd) and
// returns its path.
func buildGosd(t testing.TB) string {
	t.Helper()
	goTool, err := osexec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build testdata/gosd")
	}
	out := filepath.Join(t.TempDir(), "gosd")
	cmd := osexec.Command(goTool, "build", "-o", out, "./testdata/gosd")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gosd: %v\n%s", err, msg)
	}
	return out
}

// dialLine connects to a unix socket and reads one line.
func dialLine(path string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func (h *harness) mainPID(name string) int {
	var pid int
	h.do(func() {
		if u := h.m.Unit(name); u != nil {
			if s, ok := u.behaviour.(*service); ok {
				pid = s.mainPID
			}
		}
	})
	return pid
}

// A socket-activated go-systemd service that takes a second to start
// answers all of 200 clients that connected at once; after it stops, the
// socket listens again and the next client starts it anew.
func TestSocketActivationGoSystemd(t *testing.T) {
	gosd := buildGosd(t)
	h := newHarness(t, map[string]string{
		"echo.socket": "[socket]\nlisten-stream = [\"@DIR@/echo.sock\"]\n",
		"echo.service": `[service]
type = "notify"
exec-start = ["` + gosd + `", "serve", "1s"]
`,
	})
	if res, why := h.start("echo.socket"); res != api.ResultDone {
		t.Fatalf("start echo.socket: %s %s\n%s", res, why, h.logText())
	}
	if a, s := h.state("echo.socket"); a != "active" || s != "listening" {
		t.Errorf("echo.socket: %s/%s, want active/listening", a, s)
	}
	if a, _ := h.state("echo.service"); a != "inactive" {
		t.Errorf("echo.service is %s before any connection", a)
	}
	st := h.status("echo.service")
	if len(st.TriggeredBy) != 1 || st.TriggeredBy[0] != "echo.socket" {
		t.Errorf("echo.service TriggeredBy = %v", st.TriggeredBy)
	}

	const clients = 200
	var wg sync.WaitGroup
	answers := make(chan string, clients)
	began := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := dialLine(h.path("echo.sock"), 20*time.Second)
			if err != nil {
				line = "error: " + err.Error()
			}
			answers <- line
		}()
	}
	wg.Wait()
	close(answers)
	took := time.Since(began)
	pid := h.mainPID("echo.service")
	want := fmt.Sprintf("hello from %d", pid)
	bad := 0
	for a := range answers {
		if a != want {
			bad++
			if bad < 5 {
				t.Errorf("answer %q, want %q", a, want)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d clients not answered\n%s", bad, clients, h.logText())
	}
	if took < 900*time.Millisecond {
		t.Errorf("answered after %v, before the service could have started", took)
	}
	// The service answers as soon as it serves; its READY=1 may reach the
	// manager a moment later.
	h.waitState("echo.service", "active", 10*time.Second)
	if st := h.status("echo.service"); st.Active != "active" || st.StatusText != "serving 1 listeners" {
		t.Errorf("echo.service %s %q", st.Active, st.StatusText)
	}
	if a, s := h.state("echo.socket"); a != "active" || s != "running" {
		t.Errorf("echo.socket: %s/%s while the service runs, want active/running", a, s)
	}

	// Stopped, the service is started again by the next connection.
	if res, _ := h.stop("echo.service"); res != api.ResultDone {
		t.Fatalf("stop echo.service: %s", res)
	}
	if a, s := h.state("echo.socket"); s != "listening" {
		t.Errorf("echo.socket: %s/%s after the service stopped, want listening", a, s)
	}
	line, err := dialLine(h.path("echo.sock"), 20*time.Second)
	if err != nil || !strings.HasPrefix(line, "hello from ") || line == want {
		t.Errorf("after restart: %q %v (first run said %q)", line, err, want)
	}

	// Stop closes the listener; remove-on-stop is off, so the file stays.
	if res, _ := h.stop("echo.socket"); res != api.ResultDone {
		t.Fatalf("stop echo.socket: %s", res)
	}
	h.stop("echo.service")
	if _, err := net.Dial("unix", h.path("echo.sock")); err == nil {
		t.Error("stopped socket still accepts connections")
	}
}

// The service gets every listener of its socket, with the names of
// file-descriptor-name, and of sockets = ...; activation.Files sees them.
func TestSocketActivationFDNames(t *testing.T) {
	gosd := buildGosd(t)
	h := newHarness(t, map[string]string{
		"web.socket": `[socket]
listen-stream = ["@DIR@/a.sock", "@DIR@/b.sock"]
file-descriptor-name = "web"
`,
		"admin.socket": "[socket]\nlisten-stream = [\"@DIR@/admin.sock\"]\nservice = \"web.service\"\nremove-on-stop = true\n",
		"web.service": `[service]
type = "notify"
exec-start = ["` + gosd + `", "files", "@DIR@/files"]
`,
	})
	for _, n := range []string{"web.socket", "admin.socket"} {
		if res, why := h.start(n); res != api.ResultDone {
			t.Fatalf("start %s: %s %s", n, res, why)
		}
	}
	line, err := dialLine(h.path("b.sock"), 10*time.Second)
	if err != nil || !strings.HasPrefix(line, "hello from") {
		t.Fatalf("b.sock: %q %v\n%s", line, err, h.logText())
	}
	got := strings.TrimSpace(readFile(t, h.path("files")))
	if got != "3 admin.socket:web:web admin.socket:web:web" {
		t.Errorf("activation.Files saw %q", got)
	}
	if line, err := dialLine(h.path("admin.sock"), 10*time.Second); err != nil || !strings.HasPrefix(line, "hello from") {
		t.Errorf("admin.sock: %q %v", line, err)
	}
	h.stop("admin.socket")
	if _, err := os.Stat(h.path("admin.sock")); !os.IsNotExist(err) {
		t.Errorf("remove-on-stop left %s: %v", h.path("admin.sock"), err)
	}
}

// accept = true: one instance per connection, the connection on stdin and
// stdout, counted while it lives; max-connections refuses the excess.
func TestSocketAcceptInstances(t *testing.T) {
	h := newHarness(t, map[string]string{
		"greet.socket": "[socket]\nlisten-stream = [\"@DIR@/greet.sock\"]\naccept = true\nmax-connections = 3\n",
		"greet@.service": `[service]
exec-start = ["/bin/sh", "-c", "echo instance $$$$ fds=$$LISTEN_FDS names=$$LISTEN_FDNAMES; read line; echo got $$line"]
standard-input = "socket"
standard-output = "socket"
`,
	})
	if res, why := h.start("greet.socket"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	var conns []net.Conn
	var readers []*bufio.Reader
	pids := map[string]bool{}
	for i := 0; i < 3; i++ {
		c, err := net.Dial("unix", h.path("greet.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		f := strings.Fields(line)
		if err != nil || len(f) != 4 || f[0] != "instance" || f[2] != "fds=1" || f[3] != "names=connection" {
			t.Fatalf("connection %d: %q %v\n%s", i, line, err, h.logText())
		}
		pids[f[1]] = true
		conns = append(conns, c)
		readers = append(readers, r)
	}
	if len(pids) != 3 {
		t.Errorf("3 connections were served by %d processes", len(pids))
	}
	var rows []api.UnitSummary
	h.do(func() { rows = h.m.List(api.ListArgs{Types: []string{"socket"}}) })
	if len(rows) != 1 || rows[0].Extra["connections"] != "3" || rows[0].Extra["accepted"] != "3" ||
		rows[0].Extra["activates"] != "greet@.service" || rows[0].Extra["listen"] != h.path("greet.sock")+" (Stream)" {
		t.Errorf("list --type socket: %+v", rows)
	}
	// A fourth connection is over max-connections: closed at once.
	c, err := net.Dial("unix", h.path("greet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Errorf("connection over the limit: read %d bytes, %v", n, err)
	}
	c.Close()
	for i, c := range conns {
		fmt.Fprintf(c, "line %d\n", i)
		if got, _ := readers[i].ReadString('\n'); got != fmt.Sprintf("got line %d\n", i) {
			t.Errorf("connection %d answered %q", i, got)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var conn, refused, units string
		h.do(func() {
			props, _ := h.m.Show("greet.socket", []string{"NConnections", "NRefused"})
			conn, refused = props[0].Value, props[1].Value
			units = ""
			for _, u := range h.m.Units() {
				if strings.HasPrefix(u.Name, "greet@") && u.Name != "greet@.service" {
					units += u.Name + " "
				}
			}
		})
		if conn == "0" && refused == "1" && units == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the instances ended: NConnections=%s NRefused=%s instances left %q", conn, refused, units)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The fd store: a service stores a memfd, fails, is restarted, and finds
// the fd again through LISTEN_FDS with its name.
func TestFDStoreSurvivesRestart(t *testing.T) {
	gosd := buildGosd(t)
	h := newHarness(t, map[string]string{
		"keeper.service": `[service]
type = "notify"
exec-start = ["` + gosd + `", "fdstore", "@DIR@/keeper.out"]
file-descriptor-store-max = 2
restart = "on-failure"
restart-sec = "50ms"
`,
	})
	h.startAsync("keeper.service")
	deadline := time.Now().Add(15 * time.Second)
	for readFileOr(h.path("keeper.out")) != "restored: generation 1" {
		if time.Now().After(deadline) {
			a, s := h.state("keeper.service")
			t.Fatalf("keeper.out = %q (%s/%s)\n%s", readFileOr(h.path("keeper.out")), a, s, h.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitState("keeper.service", "active", 10*time.Second)
	if n := h.prop("keeper.service", "NFileDescriptorStore"); n != "1" {
		t.Errorf("NFileDescriptorStore = %s", n)
	}
	if n := h.prop("keeper.service", "NRestarts"); n != "1" {
		t.Errorf("NRestarts = %s", n)
	}
	// Stopped for good, the store is emptied.
	h.stop("keeper.service")
	if n := h.prop("keeper.service", "NFileDescriptorStore"); n != "0" {
		t.Errorf("after stop NFileDescriptorStore = %s", n)
	}
}

// Sockets that cannot be made fail their unit with a clear reason.
func TestSocketBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	h := newHarness(t, map[string]string{
		"busy.socket":    "[socket]\nlisten-stream = [\"127.0.0.1:" + port + "\"]\n",
		"nodir.socket":   "[socket]\nlisten-stream = [\"/proc/version/x.sock\"]\n",
		"garbled.socket": "[socket]\nlisten-stream = [\"localhost:99999\"]\n",
		"dgram.socket":   "[socket]\nlisten-datagram = [\"@DIR@/d.sock\"]\naccept = true\n",
		"orphan.socket":  "[socket]\nlisten-stream = [\"@DIR@/orphan.sock\"]\n",
	})
	for name, want := range map[string]string{
		"busy.socket":    "already in use",
		"nodir.socket":   "/proc/version/x.sock",
		"garbled.socket": "99999",
		"dgram.socket":   "accept = true needs stream",
	} {
		res, why := h.start(name)
		if res == api.ResultDone || !strings.Contains(why, want) {
			t.Errorf("%s: %s %q, want a failure mentioning %q", name, res, why, want)
		}
	}
	// A socket whose service does not exist fails at the first connection.
	if res, why := h.start("orphan.socket"); res != api.ResultDone {
		t.Fatalf("orphan.socket: %s %s", res, why)
	}
	if c, err := net.Dial("unix", h.path("orphan.sock")); err == nil {
		c.Close()
	}
	h.waitState("orphan.socket", "failed", 10*time.Second)
	if st := h.status("orphan.socket"); st.Result != "resources" {
		t.Errorf("orphan.socket result %q", st.Result)
	}
}
