package emergency

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty returns a pty master and its slave's path.
func openPty(t *testing.T) (*os.File, string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no ptys: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	return master, "/dev/pts/" + strconv.Itoa(n)
}

// forkExecWait is what a test supplies instead of PID 1's reaper.
func forkExecWait(started *int) SpawnAndWait {
	return func(path string, argv []string, attr *syscall.ProcAttr) (syscall.WaitStatus, error) {
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			return 0, err
		}
		*started = pid
		var ws syscall.WaitStatus
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		return ws, err
	}
}

// collect reads the master side until closed.
type collector struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *collector) run(f *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := f.Read(b)
		c.mu.Lock()
		c.buf.Write(b[:n])
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (c *collector) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func TestShellOnPtyIsForegroundSessionLeader(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	t.Setenv(ShellEnv, "")
	master, slave := openPty(t)
	out := &collector{}
	go out.run(master)
	// Type the commands before the shell starts: the tty buffers them.
	// Fields 5, 6 and 8 of /proc/PID/stat: process group, session and the
	// terminal's foreground group.
	// The answer goes to a file: output written just before the session
	// leader exits can be lost in the pty hangup.
	result := filepath.Join(t.TempDir(), "stat")
	if _, err := master.WriteString("echo STAT=$$:$(cut -d' ' -f5,6,8 /proc/$$/stat | tr ' ' :)=END >" + result + "; exit 3\n"); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := Shell(slave, "the default target failed:\nunit broken.service", forkExecWait(&pid)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "starting /bin/sh") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	text := out.String()
	if !strings.Contains(text, Banner+"\r\n") {
		t.Errorf("banner missing from console output %q", text)
	}
	if !strings.Contains(text, "vigil: the default target failed:") || !strings.Contains(text, "vigil: unit broken.service") {
		t.Errorf("reason missing from %q", text)
	}
	want := fmt.Sprintf("STAT=%d:%d:%d:%d=END", pid, pid, pid, pid)
	stat, err := os.ReadFile(result)
	if err != nil || strings.TrimSpace(string(stat)) != want {
		t.Errorf("shell is not its own session leader in the foreground: want %q, got %q (%v)", want, stat, err)
	}
}

func TestShellOverrideAndErrors(t *testing.T) {
	master, slave := openPty(t)
	out := &collector{}
	go out.run(master)
	dir := t.TempDir()
	script := filepath.Join(dir, "fake-shell")
	result := filepath.Join(dir, "result")
	t.Setenv("VIGIL_TEST_RESULT", result)
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho FAKE-SHELL HOME=$HOME TERM=$TERM >$VIGIL_TEST_RESULT\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ShellEnv, script)
	t.Setenv("TERM", "vt220")
	var pid int
	if err := Shell(slave, "", forkExecWait(&pid)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(result); strings.TrimSpace(string(got)) != "FAKE-SHELL HOME=/root TERM=vt220" {
		t.Errorf("override shell wrote %q", got)
	}

	t.Setenv(ShellEnv, filepath.Join(dir, "missing"))
	if err := Shell(slave, "", forkExecWait(&pid)); err == nil {
		t.Error("missing shell accepted")
	}
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("x"), 0o644)
	t.Setenv(ShellEnv, noexec)
	if err := Shell(slave, "", forkExecWait(&pid)); err == nil {
		t.Error("non-executable shell accepted")
	}
	t.Setenv(ShellEnv, script)
	if err := Shell(filepath.Join(dir, "no-console"), "", forkExecWait(&pid)); err == nil {
		t.Error("missing console accepted")
	}
	if err := Shell(slave, "", nil); err == nil {
		t.Error("nil spawn accepted")
	}
	failing := func(string, []string, *syscall.ProcAttr) (syscall.WaitStatus, error) {
		return 0, syscall.EAGAIN
	}
	if err := Shell(slave, "", failing); err == nil || !strings.Contains(err.Error(), "resource temporarily unavailable") {
		t.Errorf("spawn error not passed on: %v", err)
	}
}

func TestBannerFirstLine(t *testing.T) {
	text := BannerText("reason", "/bin/sh")
	first := strings.SplitN(strings.TrimLeft(text, "\n"), "\n", 2)[0]
	if first != "vigil: entering emergency mode" {
		t.Errorf("first line %q", first)
	}
}

func TestShellEnv(t *testing.T) {
	env := shellEnv([]string{"HOME=/home/x", "FOO=1", "PATH=/x"})
	joined := strings.Join(env, " ")
	for _, want := range []string{"HOME=/root", "FOO=1", "PATH=/x", "TERM=linux", "USER=root"} {
		if !strings.Contains(joined, want) {
			t.Errorf("%q lacks %s", joined, want)
		}
	}
	if strings.Contains(joined, "/home/x") {
		t.Errorf("HOME kept: %q", joined)
	}
}
