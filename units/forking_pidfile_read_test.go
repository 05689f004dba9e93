package units

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/api"
)

func TestPIDFileParse(t *testing.T) {
	good := map[string]int{"123": 123, "123\n": 123, " 42 \nignored": 42, "7\r\n": 7, "2147483647": 2147483647}
	for in, want := range good {
		if got, err := parsePIDFile([]byte(in)); err != nil || got != want {
			t.Errorf("parse %q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "0", "-5", "+5", "12abc", "2147483648", "99999999999999999999", "1 2", "\n123"} {
		if pid, err := parsePIDFile([]byte(in)); err == nil {
			t.Errorf("parse %q: %d, want an error", in, pid)
		}
	}
}

func FuzzParsePIDFile(f *testing.F) {
	for _, seed := range []string{"123\n", "", "0", "-1", "4294967297", " 77 \n88", "\x00", "1\r\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pid, err := parsePIDFile(data)
		if err != nil {
			return
		}
		if pid <= 0 {
			t.Fatalf("%q gave PID %d", data, pid)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		if strconv.Itoa(pid) != strings.TrimLeft(strings.TrimSpace(line), "0") {
			t.Fatalf("%q gave PID %d, not its first line", data, pid)
		}
	})
}

// openPIDFile follows symlinks as systemd's chase_symlinks(CHASE_SAFE)
// does: a symlink of an unprivileged user that leads to another owner's
// file makes the file questionable; only regular files are opened.
func TestPIDFileOpenSafely(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	real := write("real.pid")
	userFile := write("user.pid")
	os.Chown(userFile, 65534, 65534)
	link := func(name, target string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if uid != 0 {
			if err := os.Lchown(p, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	userDir := filepath.Join(dir, "userdir")
	os.Mkdir(userDir, 0o755)
	os.Chown(userDir, 65534, 65534)
	os.Symlink(real, filepath.Join(userDir, "to-root.pid"))
	os.Lchown(filepath.Join(userDir, "to-root.pid"), 65534, 65534)
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	cases := []struct {
		path         string
		questionable bool
		fails        bool
	}{
		{path: real},
		{path: userFile},
		{path: link("root-abs", real, 0)},
		{path: link("root-rel", "real.pid", 0)},
		{path: link("user-abs", real, 65534), questionable: true},
		{path: link("user-rel", "real.pid", 65534), questionable: true},
		{path: link("user-to-user", "user.pid", 65534)},
		{path: filepath.Join(userDir, "to-root.pid"), questionable: true},
		{path: dir + "/sub/../real.pid", fails: true}, // no sub, which the kernel would need too
		{path: filepath.Join(dir, "fifo"), fails: true},
		{path: link("loop", "loop", 0), fails: true},
		{path: "relative.pid", fails: true},
	}
	for _, c := range cases {
		f, q, err := openPIDFile(c.path)
		if c.fails {
			if err == nil {
				f.Close()
				t.Errorf("%s: opened, want an error", c.path)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		f.Close()
		if q != c.questionable {
			t.Errorf("%s: questionable %v, want %v", c.path, q, c.questionable)
		}
	}
	if _, _, err := openPIDFile(filepath.Join(dir, "loop")); !errors.Is(err, unix.ELOOP) {
		t.Errorf("symlink loop: %v, want ELOOP", err)
	}
}

// A daemon that re-executes itself into a new process writes the new PID
// before the old one exits: the unit follows it instead of stopping.
func TestForkingPIDFileMainPIDMoves(t *testing.T) {
	h := newHarness(t, map[string]string{
		"move.service": `[service]
type = "forking"
pid-file = "@DIR@/move.pid"
exec-start = ["/bin/sh", "-c", "(/bin/sh -c 'echo $$$$ > @DIR@/move.pid; while [ ! -e @DIR@/go ]; do sleep 0.05; done; (/bin/sh -c \"echo \\$$$$ > @DIR@/move.tmp; mv @DIR@/move.tmp @DIR@/move.pid; exec sleep 60\" &); while [ ! -s @DIR@/move.pid ] || [ $$(cat @DIR@/move.pid) = $$$$ ]; do sleep 0.05; done' </dev/null >/dev/null 2>&1 &) ; while [ ! -s @DIR@/move.pid ]; do sleep 0.05; done"]
timeout-stop = "5s"
`,
	})
	if res, why := h.start("move.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	first := readPID(t, h.path("move.pid"))
	if got := h.prop("move.service", "MainPID"); got != strconv.Itoa(first) {
		t.Fatalf("MainPID %s, want %d", got, first)
	}
	os.WriteFile(h.path("go"), nil, 0o644)
	waitDead(t, first, "the first daemon process")
	second := readPID(t, h.path("move.pid"))
	if second == first {
		t.Fatal("the daemon did not move")
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.prop("move.service", "MainPID") != strconv.Itoa(second) {
		if time.Now().After(deadline) {
			t.Fatalf("MainPID %s, want the new %d\n%s", h.prop("move.service", "MainPID"), second, h.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a, s := h.state("move.service"); a != "active" || s != "running" {
		t.Fatalf("state %s/%s after the move\n%s", a, s, h.logText())
	}
}

// After a successful reload the PID file is read again: a reload that
// replaced the daemon's process moves the main PID to the new one.
func TestForkingPIDFileReadAgainAfterReload(t *testing.T) {
	h := newHarness(t, map[string]string{
		"re.service": `[service]
type = "forking"
pid-file = "@DIR@/re.pid"
exec-start = ["/bin/sh", "-c", "(/bin/sh -c 'echo $$$$ > @DIR@/re.pid; exec sleep 60' </dev/null >/dev/null 2>&1 &) ; while [ ! -s @DIR@/re.pid ]; do sleep 0.05; done"]
exec-reload = [["/bin/sh", "-c", "old=$$(cat @DIR@/re.pid); (/bin/sh -c 'echo $$$$ > @DIR@/re.tmp; mv @DIR@/re.tmp @DIR@/re.pid; exec sleep 60' </dev/null >/dev/null 2>&1 &) ; while [ \"$$(cat @DIR@/re.pid)\" = \"$$old\" ]; do sleep 0.05; done"]]
timeout-stop = "5s"
`,
	})
	if res, why := h.start("re.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	first := readPID(t, h.path("re.pid"))
	if res, why := h.job("re.service", api.JobReload, ""); res != api.ResultDone {
		t.Fatalf("reload: %s (%s)\n%s", res, why, h.logText())
	}
	second := readPID(t, h.path("re.pid"))
	if second == first {
		t.Fatalf("the reload did not replace the daemon\n%s", h.logText())
	}
	if got := h.prop("re.service", "MainPID"); got != strconv.Itoa(second) {
		t.Fatalf("MainPID %s after the reload, want %d (was %d)\n%s", got, second, first, h.logText())
	}
}
