package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The manager's /proc readers (parsers in package procfs) read this very
// process as the kernel describes it.
func TestProcReadersOnSelf(t *testing.T) {
	pid := os.Getpid()
	sid, state, ok := procSession(pid)
	want, err := unix.Getsid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || sid != want || state == 0 || state == 'Z' {
		t.Errorf("procSession = %d %q %v, want session %d", sid, state, ok, want)
	}
	if got := procParent(pid); got != os.Getppid() {
		t.Errorf("procParent = %d, want %d", got, os.Getppid())
	}
	if cmd := procCommand(pid); !strings.Contains(cmd, filepath.Base(os.Args[0])) {
		t.Errorf("procCommand = %q, want it to name %s", cmd, os.Args[0])
	}
	if _, _, ok := procSession(-1); ok {
		t.Error("procSession of no process")
	}
	if !isMountPoint("/proc") || !isMountPoint("/proc/") || isMountPoint("/proc/self") {
		t.Errorf("isMountPoint: /proc %v, /proc/ %v, /proc/self %v", isMountPoint("/proc"), isMountPoint("/proc/"), isMountPoint("/proc/self"))
	}
}
