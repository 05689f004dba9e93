package fanotify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// helperEnv makes the test binary an accessor: "open:<path>:<n>" opens and
// closes path n times, "exec:<path>:<n>" runs it n times; it prints the
// nanoseconds per call. Accessors must be other processes, since the
// source lets the test process itself through without a hold.
const helperEnv = "VIGIL_FANOTIFY_BENCH_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(benchHelper(spec))
	}
	os.Exit(m.Run())
}

func benchHelper(spec string) int {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad helper spec", spec)
		return 2
	}
	n, _ := strconv.Atoi(parts[2])
	path := parts[1]
	begin := time.Now()
	for range n {
		switch parts[0] {
		case "open":
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			unix.Close(fd)
		case "exec":
			if err := exec.Command(path).Run(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	if n > 0 {
		fmt.Println(int64(time.Since(begin)) / int64(n))
	}
	return 0
}

// runHelper runs b.N accesses in one helper process and reports the
// helper's own per-call time (without its start-up) as ns/call.
func runHelper(b *testing.B, op, path string) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%s:%d", helperEnv, op, path, b.N))
	b.ResetTimer()
	out, err := cmd.Output()
	b.StopTimer()
	if err != nil {
		b.Fatalf("helper: %v", err)
	}
	ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("helper said %q", out)
	}
	b.ReportMetric(ns, "ns/call")
}

// rawResponder is the physical floor: a bare fanotify group that allows
// every permission event, with no loop, no /proc reads, no matching.
func rawResponder(b *testing.B, path string, mask Mask) func() {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		b.Skipf("fanotify: %v", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, mask.kernelMask(), unix.AT_FDCWD, path); err != nil {
		b.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "raw-fanotify")
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64*1024)
		var recs []record
		var resp [responseLen]byte
		for {
			n, err := f.Read(buf)
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			recs, _ = parseRecords(buf[:n], recs[:0])
			for _, r := range recs {
				if r.FD < 0 {
					continue
				}
				encodeResponse(&resp, r.FD, true)
				f.Write(resp[:])
				unix.Close(int(r.FD))
			}
		}
	}()
	return func() { f.Close(); <-done }
}

type benchCase struct {
	name  string
	setup func(b *testing.B, path string, mask Mask) func()
}

// sourceWith runs a Source on a running Loop; answer says whether a
// deciding observer allows each event at once (else no observer: the hold
// is concluded with its default at dispatch).
func sourceWith(answer bool) func(b *testing.B, path string, mask Mask) func() {
	return func(b *testing.B, path string, mask Mask) func() {
		loop := observer.New(observer.Options{})
		src, err := New(Options{Loop: loop})
		if err != nil {
			b.Skipf("fanotify: %v", err)
		}
		if answer {
			var id observer.ObserverID
			f, _ := observer.ParseFilter("source=fanotify")
			id, err = loop.Register(observer.Observer{Guest: "bench", Name: "allow", Filter: f, Decides: true,
				HoldTimeout: time.Minute, Notify: func(ev *observer.Event) { loop.Answer(ev.Hold.ID, id, observer.Allow) }})
			if err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() { defer close(ran); loop.Run(ctx) }()
		if _, err := src.Mark(path, mask); err != nil {
			b.Fatal(err)
		}
		return func() { src.Close(); cancel(); <-ran }
	}
}

var benchCases = []benchCase{
	{"unmarked", func(*testing.B, string, Mask) func() { return func() {} }},
	{"raw-responder", rawResponder},
	{"source-no-observer", sourceWith(false)},
	{"source-allowing-observer", sourceWith(true)},
}

func benchAccess(b *testing.B, op string, mask Mask, path string) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			stop := c.setup(b, path, mask)
			defer stop()
			runHelper(b, op, path)
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	path := tempFileB(b)
	benchAccess(b, "open", Open, path)
}

func BenchmarkExec(b *testing.B) {
	dir := b.TempDir()
	path := dir + "/true"
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		b.Fatal(err)
	}
	benchAccess(b, "exec", Exec, path)
}

func tempFileB(b *testing.B) string {
	p := b.TempDir() + "/file"
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}
