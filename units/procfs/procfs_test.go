package procfs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/observer/mountinfo"
)

// A stat line as the kernel writes it, for pid 4242 named "a (b) c".
const statLine = "4242 (a (b) c) S 1 4242 4240 34816 4242 4194560 1234 0 0 0 10 5 0 0 20 0 1 0 987654 12345678 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want Stat
		err  bool
	}{
		{"kernel line, command with spaces and parentheses", statLine,
			Stat{PID: 4242, Comm: "a (b) c", State: 'S', PPID: 1, PGRP: 4242, Session: 4240, StartTime: 987654, HasStartTime: true}, false},
		{"short line without the start time", "7 (sh) Z 3 7 7",
			Stat{PID: 7, Comm: "sh", State: 'Z', PPID: 3, PGRP: 7, Session: 7}, false},
		{"empty command", "1 () R 0 1 1 0",
			Stat{PID: 1, State: 'R', PGRP: 1, Session: 1}, false},
		{"no parentheses", "1 sh R 0 1 1", Stat{}, true},
		{"close before open", "1 )sh( R 0 1 1", Stat{}, true},
		{"nothing after the command", "1 (sh)", Stat{}, true},
		{"no session", "1 (sh) R 0 1", Stat{}, true},
		{"state of two letters", "1 (sh) RS 0 1 1", Stat{}, true},
		{"pid not a number", "x (sh) R 0 1 1", Stat{}, true},
		{"ppid not a number", "1 (sh) R p 1 1", Stat{}, true},
		{"start time not a number", "1 (sh) R 0 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 x", Stat{}, true},
	} {
		got, err := ParseStat([]byte(c.in))
		if c.err {
			if err == nil || !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: err %v, want one wrapping ErrMalformed", c.name, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

// The parser reads this very process's stat as the kernel writes it.
func TestParseStatOfSelf(t *testing.T) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	st, err := ParseStat(data)
	if err != nil {
		t.Fatal(err)
	}
	// /proc/self/stat shows the main thread's state, and this goroutine
	// may run on another thread while the main one sleeps: State is
	// checked on this very thread below.
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || !st.HasStartTime || st.StartTime == 0 {
		t.Errorf("own stat: %+v (pid %d, ppid %d)", st, os.Getpid(), os.Getppid())
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	data, err = os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Skip(err)
	}
	th, err := ParseStat(data)
	if err != nil {
		t.Fatal(err)
	}
	if th.PID != unix.Gettid() || th.State != 'R' || th.StartTime < st.StartTime {
		t.Errorf("own thread's stat: %+v (tid %d; the process started at %d)", th, unix.Gettid(), st.StartTime)
	}
}

func TestCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"/bin/sleep\x0060\x00":          "/bin/sleep 60",
		"":                              "",
		"\x00":                          "",
		"sshd: user [priv]":             "sshd: user [priv]", // a process that rewrote its arguments
		"sh\x00-c\x00echo a  b\x00\x00": "sh -c echo a  b",
	} {
		if got := Cmdline([]byte(in)); got != want {
			t.Errorf("Cmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUmaskAndStatusField(t *testing.T) {
	status := "Name:\tvigil\nUmask:\t0027\nState:\tS (sleeping)\nPid:\t1\n"
	if m, err := Umask([]byte(status)); err != nil || m != 0o027 {
		t.Errorf("Umask = %o, %v", m, err)
	}
	if v, ok := StatusField([]byte(status), "State"); !ok || v != "S (sleeping)" {
		t.Errorf("State = %q, %v", v, ok)
	}
	if _, ok := StatusField([]byte(status), "Pi"); ok {
		t.Error("a key's prefix matched")
	}
	for _, bad := range []string{"Name:\tx\n", "Umask:\t0029\n", "Umask:\n", "Umask:\t99999999999\n"} {
		if _, err := Umask([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Umask(%q): %v, want ErrMalformed", bad, err)
		}
	}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		if _, err := Umask(data); err != nil {
			t.Errorf("own status: %v", err)
		}
	}
}

func TestIsMountPoint(t *testing.T) {
	table := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"this line is not mountinfo\n" +
		"\n" +
		"40 22 8:1 / /mnt/with\\040space rw - ext4 /dev/sda1 rw\n" +
		"41 22 8:2 / /mnt/tab\\011here rw - ext4 /dev/sda2 rw"
	for path, want := range map[string]bool{
		"/proc": true, "/mnt/with space": true, "/mnt/tab\there": true,
		"/mnt": false, "/mnt/with\\040space": false, "/": false,
	} {
		if got := IsMountPoint([]byte(table), path); got != want {
			t.Errorf("IsMountPoint(%q) = %v, want %v", path, got, want)
		}
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil && !IsMountPoint(data, "/") {
		t.Error("/ is not a mount point of this process's table")
	}
}

// formatStat writes st back as a stat line (the fields ParseStat reads,
// zeros for the rest).
func formatStat(st Stat) string {
	s := strconv.Itoa(st.PID) + " (" + st.Comm + ") " + string([]byte{st.State}) + " " +
		fmt.Sprintf("%d %d %d", st.PPID, st.PGRP, st.Session)
	if st.HasStartTime {
		s += strings.Repeat(" 0", 15) + " " + strconv.FormatUint(st.StartTime, 10)
	}
	return s + "\n"
}

func FuzzParseStat(f *testing.F) {
	for _, s := range []string{statLine, "7 (sh) Z 3 7 7", "1 () R 0 1 1 0", "1 (a)b) R 0 1 1", "1 sh R", ")", "(", "1 (x) R 0 1 1 " + strings.Repeat("9 ", 30)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What was read, written back the kernel's way, reads the same.
		again, err := ParseStat([]byte(formatStat(st)))
		if err != nil || again != st {
			t.Fatalf("round trip of %+v: %+v, %v", st, again, err)
		}
	})
}

func FuzzCmdline(f *testing.F) {
	for _, s := range []string{"/bin/sleep\x0060\x00", "", "\x00\x00", " a \x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Cmdline(data)
		if strings.Contains(got, "\x00") || strings.TrimSpace(got) != got {
			t.Fatalf("Cmdline(%q) = %q", data, got)
		}
	})
}

func FuzzUmask(f *testing.F) {
	for _, s := range []string{"Name:\tvigil\nUmask:\t0022\n", "Umask:\t7777777\n", "Umask:", "Umask:0\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Umask(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again, err := Umask(fmt.Appendf(nil, "Umask:\t%04o\n", m)); err != nil || again != m {
			t.Fatalf("round trip of %o: %o, %v", m, again, err)
		}
	})
}

func FuzzIsMountPoint(f *testing.F) {
	f.Add([]byte("22 1 0:21 / /proc rw,nosuid - proc proc rw\n"), "/proc")
	f.Add([]byte("40 22 8:1 / /mnt/a\\040b rw - ext4 /dev/sda1 rw\nbad\n"), "/mnt/a b")
	f.Add([]byte("\n\n"), "/")
	f.Fuzz(func(t *testing.T, table []byte, path string) {
		got := IsMountPoint(table, path)
		// The answer agrees with the lines that parse on their own.
		want := false
		for _, line := range strings.Split(string(table), "\n") {
			if m, err := parseLine(line); err == nil && m == path {
				want = true
			}
		}
		if got != want {
			t.Fatalf("IsMountPoint(%q, %q) = %v, the lines say %v", table, path, got, want)
		}
	})
}

func parseLine(line string) (string, error) {
	m, err := mountinfo.ParseLine(line)
	return m.MountPoint, err
}
