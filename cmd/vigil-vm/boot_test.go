package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/initramfs"
	"vigil/qemu"
)

// openPTY opens a new pseudo-terminal pair: the master for the test and
// the slave for the program under test, as a terminal would be.
func openPTY() (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return master, slave, nil
}

// terminal is what the test sees on the master side: everything so far,
// carriage returns dropped, and a signal on every read.
type terminal struct {
	mu    sync.Mutex
	text  strings.Builder
	added chan struct{}
}

func (term *terminal) copyFrom(master *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			term.mu.Lock()
			term.text.WriteString(strings.ReplaceAll(string(buf[:n]), "\r", ""))
			term.mu.Unlock()
			select {
			case term.added <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return // EIO once the last slave descriptor is closed
		}
	}
}

func (term *terminal) String() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.text.String()
}

// waitFor waits until re matches what the terminal showed after offset,
// and returns the offset after the match.
func (term *terminal) waitFor(ctx context.Context, re *regexp.Regexp, offset int) (int, error) {
	for {
		s := term.String()
		if loc := re.FindStringIndex(s[offset:]); loc != nil {
			return offset + loc[1], nil
		}
		select {
		case <-term.added:
		case <-ctx.Done():
			return 0, fmt.Errorf("no %q on the terminal: %w", re, ctx.Err())
		}
	}
}

// TestInteractiveBootOnATerminal is what `make boot` promises: `vigil-vm
// boot`, built from the tree, on a terminal (a pseudo-terminal here)
// boots Vigil to a root shell on the console; what is typed there runs in
// the guest; `poweroff` ends QEMU with status 0 after a clean shutdown.
func TestInteractiveBootOnATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; skipped with -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil && os.Getenv("VIGIL_REQUIRE_VM") == "" {
		t.Skip("qemu-system-x86_64 not installed (set VIGIL_REQUIRE_VM=1 to fail instead)")
	}
	if _, err := qemu.FindKernel("/boot"); err != nil && os.Getenv("VIGIL_REQUIRE_VM") == "" {
		t.Skipf("%v (set VIGIL_REQUIRE_VM=1 to fail instead)", err)
	}
	root, err := initramfs.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "vigil-vm")
	if err := initramfs.BuildGoProgram(ctx, root, "./cmd/vigil-vm", bin); err != nil {
		t.Fatal(err)
	}
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()

	// As `make boot` does: from the module's root, which vigil-vm builds
	// vigil and initctl from.
	cmd := exec.CommandContext(ctx, bin, "boot")
	cmd.Dir = root
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// The terminal is its controlling terminal, in a session of its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	term := &terminal{added: make(chan struct{}, 1)}
	go term.copyFrom(master)
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cancel() // kills vigil-vm; QEMU follows by its parent-death signal
			<-exited
		}
		t.Logf("terminal:\n%s", term.String()) // shown with -v or on failure
	}()
	typeLine := func(line string) {
		t.Helper()
		// The terminal is raw (QEMU set it so): Enter is a carriage
		// return, which the guest's tty turns into a newline.
		if _, err := master.WriteString(line + "\r"); err != nil {
			t.Fatalf("type %q: %v", line, err)
		}
	}

	off, err := term.waitFor(ctx, regexp.MustCompile(`vigil: reached default target \S+`), 0)
	if err != nil {
		t.Fatalf("%v", err)
	}
	// The console shell's prompt: ash prints "# " for root (or a PS1
	// ending in it), and with line editing it may follow it with a query
	// of the cursor's position (ESC [6n). Enter until one shows after the
	// boot's last lines.
	promptRE := regexp.MustCompile(`[#$] (?:\x1b\[[0-9;?]*[A-Za-z])*$`)
	for {
		typeLine("")
		wait, stop := context.WithTimeout(ctx, 5*time.Second)
		off, err = term.waitFor(wait, promptRE, off)
		stop()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no shell prompt: %v", err)
		}
	}
	typeLine("echo vigil-$((6*7))")
	// The typed line echoes back with "$((6*7))" in it: only the shell's
	// arithmetic prints vigil-42.
	if off, err = term.waitFor(ctx, regexp.MustCompile(`(?m)^vigil-42$`), off); err != nil {
		t.Fatalf("the shell did not answer: %v", err)
	}
	typeLine("poweroff")
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatalf("QEMU did not exit after poweroff")
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			t.Fatalf("vigil-vm boot exited with status %d", ee.ExitCode())
		}
		t.Fatalf("vigil-vm boot: %v", waitErr)
	}
	if _, err := term.waitFor(ctx, regexp.MustCompile(`vigil: shutdown complete: poweroff clean`), off); err != nil {
		t.Fatalf("%v", err)
	}
}
