package autofs

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// accessor is a shell in a process group of its own (accesses from the
// daemon's group never trigger) that tests a path each time it is asked:
// the time from the request to its answer is one access, plus a pipe
// round trip (BenchmarkAccessBaseline measures that alone).
type accessor struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startAccessor(b *testing.B, path string) *accessor {
	b.Helper()
	cmd := exec.Command("/bin/sh", "-c", `while read -r _; do [ -e "$1" ]; echo $?; done`, "sh", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	a := &accessor{cmd: cmd, in: in, out: bufio.NewReader(out)}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	return a
}

func (a *accessor) access(b *testing.B) time.Duration {
	start := time.Now()
	if _, err := io.WriteString(a.in, "x\n"); err != nil {
		b.Fatal(err)
	}
	line, err := a.out.ReadString('\n')
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if strings.TrimSpace(line) != "0" {
		b.Fatalf("access failed: %q", line)
	}
	return d
}

// BenchmarkFirstAccess: an accessor's test of a file through an unmounted
// automount, until it returns: the kernel's request, the loop's held
// event, the fake supervisor mounting a tmpfs (and writing one file), the
// READY. The tmpfs is unmounted between accesses (not timed).
func BenchmarkFirstAccess(b *testing.B) {
	s := newServer(b, Options{}, serveTmpfs)
	a := startAccessor(b, filepath.Join(s.where, "hello"))
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if i > 0 {
			if err := unix.Unmount(s.where, 0); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		total += a.access(b)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/first-access")
	if got := int(s.missing.Load()); got != b.N {
		b.Fatalf("%d requests for %d first accesses", got, b.N)
	}
}

// BenchmarkMountedAccess: the same test once the mount is there.
func BenchmarkMountedAccess(b *testing.B) {
	s := newServer(b, Options{}, serveTmpfs)
	a := startAccessor(b, filepath.Join(s.where, "hello"))
	a.access(b)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += a.access(b)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/access")
	if got := s.missing.Load(); got != 1 {
		b.Fatalf("%d requests, want 1", got)
	}
}

// BenchmarkAccessBaseline: the same test of a file in a plain directory,
// the round trip to the accessor included in the figures above.
func BenchmarkAccessBaseline(b *testing.B) {
	dir := b.TempDir()
	if err := mountTmpfs(dir); err != nil {
		b.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	a := startAccessor(b, filepath.Join(dir, "hello"))
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += a.access(b)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/access")
}
