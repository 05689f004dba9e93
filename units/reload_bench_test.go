package units

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"vigil/observer"
)

// BenchmarkReload1000Units is `systemctl daemon-reload` with 1,000 unit
// files that did not change since the last reading (the common case: one
// file edited among many, or none). cpu-ms/op is the process's CPU time
// per reload, which the load of a shared machine distorts less than the
// wall time.
func BenchmarkReload1000Units(b *testing.B) {
	dir := b.TempDir()
	writeOneshots(b, filepath.Join(dir, "units"), 1000)
	// Files written in the last 2 s are read again on every reload (the
	// file cache's racy window): let them age, as files on a system do.
	time.Sleep(2100 * time.Millisecond)
	loop := observer.New(observer.Options{})
	m, err := New(loop, Options{UnitPaths: []string{filepath.Join(dir, "units")}, RuntimeDir: filepath.Join(dir, "run")})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpuBefore := processCPU()
	for b.Loop() {
		if res := m.Reload(); len(res.Changed)+len(res.Added)+len(res.Removed) != 0 {
			b.Fatalf("nothing changed on disk, yet the reload reported %+v", res)
		}
	}
	b.ReportMetric(float64(processCPU()-cpuBefore)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// processCPU is the user and system time of the whole process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
