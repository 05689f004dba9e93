package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/api"
)

func TestParseArgs(t *testing.T) {
	specs := append(globalFlags(), []flagSpec{
		{Long: "property", Short: 'p', Value: "NAME", Repeat: true},
		{Long: "lines", Short: 'n', Value: "N"},
		{Long: "all", Short: 'a'},
		{Long: "follow", Short: 'f'},
	}...)
	p, err := parseArgs([]string{"a.service", "-p", "Id,Names", "--property=MainPID", "-n5", "-af", "--socket", "/s", "b.service", "--", "-c.service"}, specs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.args, " "); got != "a.service b.service -c.service" {
		t.Errorf("args %q", got)
	}
	if got := strings.Join(p.list("property"), ","); got != "Id,Names,MainPID" {
		t.Errorf("property %q", got)
	}
	if n, _ := p.int("lines", 10); n != 5 || !p.has("all") || !p.has("follow") || p.str("socket", "") != "/s" {
		t.Errorf("parsed %+v", p)
	}
	if p, _ := parseArgs([]string{"--all=false", "-n", "7"}, specs); p.has("all") {
		t.Error("--all=false left --all set")
	} else if n, _ := p.int("lines", 0); n != 7 {
		t.Errorf("-n 7 gave %d", n)
	}
	for _, bad := range [][]string{{"--nope"}, {"-z"}, {"--lines"}, {"-n"}, {"--all=maybe"}} {
		if _, err := parseArgs(bad, specs); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	p, _ = parseArgs([]string{"-n", "x"}, specs)
	if _, err := p.int("lines", 0); err == nil {
		t.Error("-n x accepted")
	}
	// A negative number is an argument, not an option cluster.
	if p, err := parseArgs([]string{"emit", "-5"}, specs); err != nil || len(p.args) != 2 {
		t.Errorf("negative number: %v %v", err, p)
	}
}

func testEnv(tty bool, width int) (*env, *bytes.Buffer) {
	var out bytes.Buffer
	now := time.Date(2024, 3, 1, 12, 0, 3, 0, time.UTC)
	return &env{ctx: context.Background(), stdout: &out, stderr: &out, tty: tty, legend: tty, width: width, program: "initctl", now: func() time.Time { return now }}, &out
}

func TestUnitTableOnTerminal(t *testing.T) {
	e, out := testEnv(true, 60)
	units := []api.UnitSummary{
		{Name: "db.service", Load: "loaded", Active: "failed", Sub: "failed", Description: "Database"},
		{Name: "web-frontend.service", Load: "loaded", Active: "active", Sub: "running", Description: "A web server whose description is far too long for the screen"},
	}
	e.printUnitTable(units, false)
	want := "" +
		"\x1b[0;1;39m  UNIT                 LOAD   ACTIVE SUB     DESCRIPTION\x1b[0m\n" +
		"\x1b[0;1;31m●\x1b[0m db.service           loaded failed failed  Database\n" +
		"  web-frontend.service loaded active running A web server w…\n" +
		"\nLOAD   = Whether the unit's file was loaded without errors.\n" +
		"ACTIVE = The high-level activation state.\n" +
		"SUB    = The low-level state; its values depend on the unit type.\n" +
		"\n2 loaded units listed. Pass --all to see loaded but inactive units, too.\n"
	if out.String() != want {
		t.Fatalf("table:\n%s\n%q\nwant\n%q", out.String(), out.String(), want)
	}
	// --full keeps the long description; --no-legend drops header and footer.
	e, out = testEnv(true, 60)
	e.full, e.legend = true, false
	e.printUnitTable(units[1:], true)
	if out.String() != "web-frontend.service loaded active running A web server whose description is far too long for the screen\n" {
		t.Fatalf("--full --no-legend: %q", out.String())
	}
}

func TestStatusLayout(t *testing.T) {
	e, out := testEnv(false, 0)
	start := time.Date(2024, 3, 1, 11, 58, 33, 0, time.UTC) // 90s before now
	tasks, mem, peak, cpu := uint64(3), uint64(1572864), uint64(3<<20), uint64(1234*time.Millisecond)
	st := &api.UnitStatus{
		UnitSummary:   api.UnitSummary{Name: "foo.service", Load: "loaded", Active: "active", Sub: "running", Description: "Foo daemon", MainPID: 1234},
		Fragment:      "/etc/vigil/units/foo.service",
		UnitFileState: "enabled",
		DropIns:       []string{"/etc/vigil/units/foo.service.d/a.toml", "/etc/vigil/units/foo.service.d/b.toml"},
		ActiveEnter:   start,
		StatusText:    "Ready.",
		NRestarts:     2,
		TasksCurrent:  &tasks, MemoryCurrent: &mem, MemoryPeak: &peak, CPUUsageNSec: &cpu,
		ControlGroup: "/vigil.slice/foo.service",
		Processes:    []api.Process{{PID: 1234, Command: "/usr/sbin/food --foreground", Main: true}, {PID: 1240, Command: "food-helper"}},
		Logs: []api.LogLine{
			{Time: start, Unit: "foo.service", PID: 1234, Text: "old"},
			{Time: start.Add(time.Second), Unit: "foo.service", PID: 1234, Text: "starting"},
			{Time: start.Add(2 * time.Second), Unit: "foo.service", PID: 1234, Text: "ready"},
		},
	}
	e.formatStatus(out, st, 2)
	ts := func(t time.Time) string { return t.Local().Format("Jan 02 15:04:05") }
	want := "● foo.service - Foo daemon\n" +
		"     Loaded: loaded (/etc/vigil/units/foo.service; enabled)\n" +
		"    Drop-In: /etc/vigil/units/foo.service.d\n" +
		"             └─a.toml, b.toml\n" +
		"     Active: active (running) since Fri 2024-03-01 11:58:33 UTC; 1min 30s ago\n" +
		"   Main PID: 1234 (food)\n" +
		"     Status: \"Ready.\"\n" +
		"   Restarts: 2\n" +
		"      Tasks: 3\n" +
		"     Memory: 1.5M (peak: 3.0M)\n" +
		"        CPU: 1.234s\n" +
		"     CGroup: /vigil.slice/foo.service\n" +
		"             ├─1234 /usr/sbin/food --foreground\n" +
		"             └─1240 food-helper\n" +
		"\n" +
		ts(start.Add(time.Second)) + " foo.service[1234]: starting\n" +
		ts(start.Add(2*time.Second)) + " foo.service[1234]: ready\n"
	if out.String() != want {
		t.Fatalf("status:\n%s\nwant\n%s", out.String(), want)
	}

	e, out = testEnv(false, 0)
	e.formatStatus(out, &api.UnitStatus{
		UnitSummary: api.UnitSummary{Name: "broken.service", Load: "bad-setting", Active: "inactive", Sub: "dead"},
		LoadError:   "broken.service:3:1: unknown key 'restart-secs' (did you mean 'restart-sec'?)",
	}, 10)
	want = "● broken.service\n" +
		"     Loaded: bad-setting (Reason: broken.service:3:1: unknown key 'restart-secs' (did you mean 'restart-sec'?))\n" +
		"     Active: inactive (dead)\n"
	if out.String() != want {
		t.Fatalf("bad unit status:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestFormatters(t *testing.T) {
	spans := map[time.Duration]string{
		3 * time.Second:                      "3s",
		90 * time.Second:                     "1min 30s",
		2*time.Hour + 5*time.Minute + 9:      "2h 5min",
		26 * time.Hour:                       "1 day 2h",
		3*24*time.Hour + 30*time.Minute:      "3 days",
		1500 * time.Millisecond:              "1s 500ms",
		20 * time.Microsecond:                "20us",
		2*time.Minute + 300*time.Millisecond: "2min",
	}
	for d, want := range spans {
		if got := formatSpan(d); got != want {
			t.Errorf("formatSpan(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{100: "100B", 1536: "1.5K", 1572864: "1.5M", 5 << 30: "5.0G"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for sig, want := range map[string]string{"TERM": "SIGTERM", "sigkill": "SIGKILL", "9": "SIGKILL", "SIGUSR1": "SIGUSR1"} {
		if got, err := parseSignal(sig); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %q, %v", sig, got, err)
		}
	}
	if _, err := parseSignal("999"); err == nil {
		t.Error("signal 999 accepted")
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2024, 3, 10, 15, 30, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"":                          {},
		"now":                       now,
		"today":                     time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC),
		"yesterday":                 time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC),
		"10min ago":                 now.Add(-10 * time.Minute),
		"1h 30min ago":              now.Add(-90 * time.Minute),
		"-2d":                       now.Add(-48 * time.Hour),
		"+500ms":                    now.Add(500 * time.Millisecond),
		"2024-03-01T10:00:00+01:00": time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC),
		"2024-03-01 10:00":          time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
		"2024-03-01":                time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		"09:15":                     time.Date(2024, 3, 10, 9, 15, 0, 0, time.UTC),
		"@1700000000":               time.Unix(1700000000, 0),
	}
	for in, want := range cases {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"last tuesday", "10 parsecs ago", "ago", "@x", "-", "2024-13-01", "1.2.3s ago"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

// FuzzParseSince: the command line is outside input too; no panic, and a
// relative time is never after now when it says "ago".
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"10min ago", "today", "-1h 30min", "@1700000000.5", "2024-03-01 10:00", "99999999999999999999y ago", "1e308s ago", ".s", "5 M ago"} {
		f.Add(s)
	}
	now := time.Date(2024, 3, 10, 15, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err == nil && strings.HasSuffix(s, " ago") && got.After(now) {
			t.Fatalf("%q is after now: %v", s, got)
		}
	})
}

// openPTY returns a pseudo-terminal pair: what initctl writes to the
// second file arrives on the first.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pty slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 100}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

func TestSpinnerOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	defer master.Close()
	if tty, width := terminal(slave); !tty || width != 100 {
		t.Fatalf("terminal(pty) = %v, %d", tty, width)
	}
	if tty, _ := terminal(&bytes.Buffer{}); tty {
		t.Fatal("a buffer is a terminal")
	}
	var (
		mu    sync.Mutex
		drawn []byte
	)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf) // EIO once the slave closes
			mu.Lock()
			drawn = append(drawn, buf[:n]...)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	shown := func() string { mu.Lock(); defer mu.Unlock(); return string(drawn) }
	m := newTestManager(t)
	// The job runs until the spinner line is on the screen: a fixed job
	// length could end before a loaded machine drew it.
	release := m.holdJobs("slow.service")
	spinner := regexp.MustCompile(`A start job is running for slow\.service \(\d+s\)`)
	exited := make(chan int, 1)
	go func() {
		var out bytes.Buffer
		exited <- run(context.Background(), []string{"initctl", "--socket", m.socket, "start", "slow.service"}, &out, slave)
	}()
	for deadline := time.Now().Add(30 * time.Second); !spinner.MatchString(shown()) || !strings.Contains(shown(), "\r\x1b[K["); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("no spinner line on the terminal while the job runs: %q", shown())
		}
	}
	release()
	code := <-exited
	slave.Close()
	if code != 0 {
		t.Fatalf("start slow: exit %d", code)
	}
	<-ended
	screen := shown()
	if !strings.HasSuffix(screen, "\r\x1b[K") {
		t.Fatalf("spinner line not cleared at the end: %q", screen)
	}
	if strings.Contains(screen, "Starting Slow...\n") {
		t.Fatalf("plain progress lines on a terminal: %q", screen)
	}
}

func TestMangleUnit(t *testing.T) {
	for _, c := range []struct{ in, suffix, want string }{
		{"web", ".service", "web.service"},
		{"web.service", ".service", "web.service"},
		{"rescue", ".target", "rescue.target"},
		{"getty@tty1", ".service", "getty@tty1.service"},
		{"foo.bar", ".service", "foo.bar.service"},
		{"dev-sda.device", ".service", "dev-sda.device"},
		{"web*", ".service", "web*"},
		{"/home", ".service", "/home"},
		{"", ".service", ""},
	} {
		if got := mangleUnit(c.in, c.suffix); got != c.want {
			t.Errorf("mangleUnit(%q, %q) = %q, want %q", c.in, c.suffix, got, c.want)
		}
	}
}
