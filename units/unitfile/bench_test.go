package unitfile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// writeUnits writes n typical services (and a target wanting them) into a
// fresh unit directory.
func writeUnits(tb testing.TB, n int) Paths {
	dir := tb.TempDir()
	for i := range n {
		content := fmt.Sprintf(`[unit]
description = "Benchmark service %d"
after = ["network.target", "svc%d.service"]
wants = "network.target"

[service]
type = "notify"
exec-start = "/bin/true --index %d --name '%%n'"
exec-reload = "/bin/kill -HUP $MAINPID"
restart = "on-failure"
restart-sec = "1s"
timeout-stop = "30s"
environment = { INDEX = "%d", MODE = "bench" }
user = "daemon"
limits = { nofile = "1024:4096" }

[install]
wanted-by = "multi-user.target"
`, i, i+1, i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("svc%d.service", i)), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "multi-user.target"), []byte("[unit]\ndescription = \"Multi-User\"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return Paths{dir}
}

// BenchmarkScan1000 loads 1,000 unit files (issue 2 aims at well under
// 100 ms).
func BenchmarkScan1000(b *testing.B) {
	paths := writeUnits(b, 1000)
	ctx := testContext()
	b.ReportAllocs()
	cpuBefore := cpuTime()
	for b.Loop() {
		units, problems := Scan(paths, ctx)
		if len(units) != 1001 || len(problems) != 0 {
			b.Fatalf("%d units, problems %v", len(units), problems)
		}
	}
	// CPU time (all threads) per scan: wall time alone misleads on a
	// shared machine.
	b.ReportMetric(float64((cpuTime()-cpuBefore).Milliseconds())/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoadOne loads one unit by name from a directory of 1,000.
func BenchmarkLoadOne(b *testing.B) {
	paths := writeUnits(b, 1000)
	ctx := testContext()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(paths, "svc500.service", ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnitMemory measures the heap a loaded unit keeps, which issue 2
// wants small (the manager's budget is 20 KB per unit, all included).
func TestUnitMemory(t *testing.T) {
	paths := writeUnits(t, 1000)
	ctx := testContext()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	units, _ := Scan(paths, ctx)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perUnit := (after.HeapAlloc - before.HeapAlloc) / uint64(len(units))
	t.Logf("%d bytes of heap per loaded unit", perUnit)
	if perUnit > 8<<10 {
		t.Errorf("a loaded unit keeps %d bytes, want under 8 KB", perUnit)
	}
	runtime.KeepAlive(units)
}
