package notify

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMessage(t *testing.T) {
	m := ParseMessage([]byte("READY=1\nSTATUS=Serving 3 clients\nMAINPID=4242\nERRNO=2\nBUSERROR=org.freedesktop.DBus.Error.Failed\n" +
		"WATCHDOG=1\nWATCHDOG_USEC=2000000\nEXTEND_TIMEOUT_USEC=300\nRELOADING=1\nMONOTONIC_USEC=123456\n" +
		"FDSTORE=1\nFDNAME=db\nFDPOLL=0\nNOTIFYACCESS=all\nX_CUSTOM=1\n"))
	status := "Serving 3 clients"
	want := Message{Ready: true, Reloading: true, LastState: "RELOADING", Status: &status, MainPID: 4242, Errno: 2,
		BusError: "org.freedesktop.DBus.Error.Failed", Watchdog: true, WatchdogUSec: 2000000, ExtendTimeoutUSec: 300,
		MonotonicUSec: 123456, FDStore: true, FDName: "db", FDNoPoll: true, NotifyAccess: "all", Unknown: []string{"X_CUSTOM=1"}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
}

func TestParseMessageBadLines(t *testing.T) {
	cases := map[string]struct {
		text      string
		malformed int
		unknown   int
	}{
		"no equals":        {"READY", 1, 0},
		"empty key":        {"=1", 1, 0},
		"digit key":        {"1READY=1", 1, 0},
		"space in key":     {"READY =1", 1, 0},
		"negative pid":     {"MAINPID=-5", 1, 0},
		"zero pid":         {"MAINPID=0", 1, 0},
		"pid overflow":     {"MAINPID=99999999999999999999", 1, 0},
		"usec not number":  {"WATCHDOG_USEC=soon", 1, 0},
		"bad fdname":       {"FDNAME=a:b", 1, 0},
		"bad access":       {"NOTIFYACCESS=some", 1, 0},
		"ready 0":          {"READY=0", 0, 1},
		"watchdog other":   {"WATCHDOG=2", 0, 1},
		"invalid utf8":     {"STATUS=\xff\xfe", 1, 0},
		"status too large": {"STATUS=" + strings.Repeat("a", MaxStatus+1), 1, 0},
		"blank lines":      {"\n\n\n", 0, 0},
	}
	for name, c := range cases {
		m := ParseMessage([]byte(c.text))
		if m.Malformed != c.malformed || len(m.Unknown) != c.unknown {
			t.Errorf("%s: malformed %d unknown %v, want %d and %d", name, m.Malformed, m.Unknown, c.malformed, c.unknown)
		}
	}
}

// The last of READY, RELOADING and STOPPING wins, as in systemd.
func TestLastStateWins(t *testing.T) {
	for text, want := range map[string]string{
		"READY=1\nSTOPPING=1":            "STOPPING",
		"STOPPING=1\nREADY=1":            "READY",
		"RELOADING=1\nSTATUS=x\nREADY=1": "READY",
		"READY=1\nRELOADING=1\nREADY=0":  "RELOADING",
		"STATUS=only":                    "",
	} {
		if got := ParseMessage([]byte(text)).LastState; got != want {
			t.Errorf("%q: last state %q, want %q", text, got, want)
		}
	}
}

// An empty STATUS= clears the text: present, but empty.
func TestEmptyStatusClears(t *testing.T) {
	m := ParseMessage([]byte("STATUS="))
	if m.Status == nil || *m.Status != "" {
		t.Errorf("STATUS= gave %v", m.Status)
	}
	if a := m.attrs(); a["status"] != "" {
		t.Errorf("attrs %v", a)
	} else if _, ok := a["status"]; !ok {
		t.Errorf("status attribute missing for an empty STATUS=")
	}
}

func FuzzParseNotify(f *testing.F) {
	for _, seed := range []string{
		"READY=1", "READY=1\nSTATUS=hello\nMAINPID=12170", "WATCHDOG=trigger", "FDSTORE=1\nFDNAME=x\nFDPOLL=0",
		"MAINPID=-1", "=", "\n", "STATUS=\xff", "BARRIER=1", "ERRNO=99999999999999999999", "A=B=C",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := ParseMessage(data)
		_ = m.attrs()
		if m.MainPID < 0 || m.Errno < 0 {
			t.Fatalf("negative value accepted: %+v", m)
		}
		if m.FDName != "" && !ValidFDName(m.FDName) {
			t.Fatalf("invalid FDNAME accepted: %q", m.FDName)
		}
		lines := 0
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" {
				lines++
			}
		}
		if m.Malformed > lines || len(m.Unknown) > lines {
			t.Fatalf("more problems than lines: %+v", m)
		}
	})
}

func TestAllowed(t *testing.T) {
	self := os.Getpid()
	p := Processes{MainPID: 100, ControlPID: 200, Contains: func(pid int) bool { return pid == 300 }}
	cases := []struct {
		access Access
		pid    int
		procs  Processes
		ok     bool
	}{
		{AccessNone, 100, p, false},
		{AccessMain, 100, p, true},
		{AccessMain, 200, p, false},
		{AccessMain, 100, Processes{}, false},
		{AccessExec, 100, p, true},
		{AccessExec, 200, p, true},
		{AccessExec, 300, p, false},
		{AccessExec, 0, Processes{}, false},
		{AccessAll, 300, p, true},
		{AccessAll, 400, p, false},
		{AccessAll, 200, p, true},
		{"sometimes", 100, p, false},
		{AccessAll, self, Processes{Contains: InProcessGroup(mustPgid(t))}, true},
		{AccessAll, self, Processes{Contains: InProcessGroup(1 << 30)}, false},
	}
	for _, c := range cases {
		ok, reason := Allowed(c.access, c.pid, c.procs)
		if ok != c.ok || reason == "" {
			t.Errorf("Allowed(%s, %d, %+v) = %v %q, want %v", c.access, c.pid, c.procs, ok, reason, c.ok)
		}
	}
}

func mustPgid(t *testing.T) int {
	t.Helper()
	pgid, err := unix.Getpgid(0)
	if err != nil {
		t.Fatal(err)
	}
	return pgid
}

// The cgroup rule reads this process's real cgroup from /proc.
func TestInCgroup(t *testing.T) {
	cg, err := CgroupOf(os.Getpid())
	if err != nil {
		t.Skipf("no cgroup2 membership: %v", err)
	}
	if !InCgroup(cg)(os.Getpid()) {
		t.Errorf("process not in its own cgroup %q", cg)
	}
	if InCgroup(cg + "/not-here")(os.Getpid()) {
		t.Errorf("process in a child group it is not in")
	}
	if cg != "/" && InCgroup(cg+"x")(os.Getpid()) {
		t.Errorf("prefix of a sibling name matched")
	}
	if _, err := CgroupOf(1 << 30); err == nil {
		t.Errorf("cgroup of a PID that cannot exist")
	}
}
