package units

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"vigil/observer"
	"vigil/units/api"
)

// writeOneshots writes n independent oneshot units running /bin/true and a
// target that wants them all.
func writeOneshots(tb testing.TB, dir string, n int) {
	tb.Helper()
	os.MkdirAll(dir, 0o755)
	names := make([]string, n)
	for i := 0; i < n; i++ {
		names[i] = fmt.Sprintf("\"u%04d.service\"", i)
		content := fmt.Sprintf("[unit]\ndescription = \"Unit %d\"\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n", i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("u%04d.service", i)), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	target := "[unit]\nwants = [" + strings.Join(names, ", ") + "]\n"
	os.WriteFile(filepath.Join(dir, "all.target"), []byte(target), 0o644)
}

func BenchmarkLoad1000Units(b *testing.B) {
	dir := b.TempDir()
	writeOneshots(b, filepath.Join(dir, "units"), 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		loop := observer.New(observer.Options{})
		if _, err := New(loop, Options{UnitPaths: []string{filepath.Join(dir, "units")}, RuntimeDir: filepath.Join(dir, "run")}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkManagerMemoryPerUnit(b *testing.B) {
	dir := b.TempDir()
	writeOneshots(b, filepath.Join(dir, "units"), 1000)
	var keep []*Manager
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < b.N; i++ {
		loop := observer.New(observer.Options{})
		m, err := New(loop, Options{UnitPaths: []string{filepath.Join(dir, "units")}, RuntimeDir: filepath.Join(dir, "run")})
		if err != nil {
			b.Fatal(err)
		}
		keep = append(keep, m)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perUnit := float64(after.HeapAlloc-before.HeapAlloc) / float64(b.N) / 1001
	b.ReportMetric(perUnit, "bytes/unit")
	runtime.KeepAlive(keep)
}

func BenchmarkStart1000Oneshots(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := newBenchHarness(b)
		b.StartTimer()
		begin := time.Now()
		res, why := h.start("all.target")
		if res != api.ResultDone {
			b.Fatalf("all.target: %s (%s)", res, why)
		}
		// The target is reached when its wants are started; wait until
		// every oneshot has run to completion.
		for {
			pending := 0
			h.do(func() { pending = len(h.m.jobs) })
			if pending == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(1000/time.Since(begin).Seconds(), "units/s")
		b.StopTimer()
		h.close()
		b.StartTimer()
	}
}
