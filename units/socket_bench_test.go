package units

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/api"
)

// newBenchUnits runs a manager on files for a benchmark; everything is
// stopped when the benchmark ends.
func newBenchUnits(b *testing.B, files map[string]string) *harness {
	b.Helper()
	dir := b.TempDir()
	h := &harness{t: b, dir: dir, units: filepath.Join(dir, "units")}
	h.write(files)
	h.loop = observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if _, err := process.Start(ctx, h.loop); err != nil {
		b.Fatal(err)
	}
	m, err := New(h.loop, Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"), Logf: func(string, ...any) {}})
	if err != nil {
		b.Fatal(err)
	}
	h.m = m
	h.done = make(chan struct{})
	go func() { h.loop.Run(ctx); close(h.done) }()
	b.Cleanup(func() {
		h.do(func() {
			for _, u := range h.m.Units() {
				if !u.active.IsInactiveOrFailed() {
					h.m.Enqueue(u.Name, api.JobStop, api.ModeReplace)
				}
			}
		})
		for i := 0; i < 500; i++ {
			busy := false
			h.do(func() { busy = len(h.m.jobs) > 0 })
			if !busy {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.close()
	})
	return h
}

// firstByte connects and reads the first byte of the answer.
func firstByte(b *testing.B, path string) {
	c, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var one [1]byte
	if _, err := io.ReadFull(c, one[:]); err != nil {
		b.Fatal(err)
	}
	c.Close()
}

// BenchmarkSocketFirstByte is connect-to-first-byte latency of a go-systemd
// service (testdata/gosd, type notify): started by the connection itself
// ("activated": socket listening, service stopped before each connection)
// against the same service already running.
func BenchmarkSocketFirstByte(b *testing.B) {
	gosd := buildGosd(b)
	h := newBenchUnits(b, map[string]string{
		"echo.socket":  "[socket]\nlisten-stream = [\"@DIR@/echo.sock\"]\n",
		"echo.service": "[unit]\nstart-limit-burst = 0\n[service]\ntype = \"notify\"\nexec-start = [\"" + gosd + "\", \"serve\", \"0s\"]\n",
	})
	if res, why := h.start("echo.socket"); res != api.ResultDone {
		b.Fatalf("start: %s %s", res, why)
	}
	sock := h.path("echo.sock")
	b.Run("activated", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if res, _ := h.stop("echo.service"); res != api.ResultDone {
				b.Fatalf("stop: %s", res)
			}
			b.StartTimer()
			firstByte(b, sock)
		}
	})
	b.Run("running", func(b *testing.B) {
		firstByte(b, sock) // starts it if needed
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			firstByte(b, sock)
		}
	})
}

// BenchmarkSocketAccept is accept = true throughput: each connection gets
// its own instance (/bin/echo on the connection), with 8 clients at once.
func BenchmarkSocketAccept(b *testing.B) {
	h := newBenchUnits(b, map[string]string{
		"hi.socket": "[socket]\nlisten-stream = [\"@DIR@/hi.sock\"]\naccept = true\nmax-connections = 1024\n",
		"hi@.service": `[service]
exec-start = ["/bin/echo", "hi"]
standard-input = "socket"
standard-output = "socket"
`,
	})
	if res, why := h.start("hi.socket"); res != api.ResultDone {
		b.Fatalf("start: %s %s", res, why)
	}
	sock := h.path("hi.sock")
	began := time.Now()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := net.Dial("unix", sock)
			if err != nil {
				b.Error(err)
				return
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || strings.TrimSpace(line) != "hi" {
				b.Errorf("answer %q %v", line, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "conn/s")
}
