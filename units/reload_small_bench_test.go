package units

import (
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
)

// BenchmarkReload75Units is `systemctl daemon-reload` at the size of the
// guest benchmark's small boot (the built-in units and 75 loaded, none
// changed): what is left there is the reload's fixed cost, not the
// per-file work BenchmarkReload1000Units measures.
func BenchmarkReload75Units(b *testing.B) {
	dir := b.TempDir()
	writeOneshots(b, filepath.Join(dir, "units"), 30)
	loop := observer.New(observer.Options{})
	m, err := New(loop, Options{UnitPaths: []string{filepath.Join(dir, "units")}, RuntimeDir: filepath.Join(dir, "run")})
	if err != nil {
		b.Fatal(err)
	}
	// Let the files (the built-in units New writes among them) age out of
	// the file cache's racy window, then read them once more to cache them.
	time.Sleep(2100 * time.Millisecond)
	m.Reload()
	b.Logf("%d units loaded", len(m.Units()))
	b.ReportAllocs()
	cpuBefore := processCPU()
	for b.Loop() {
		if res := m.Reload(); len(res.Changed)+len(res.Added)+len(res.Removed) != 0 {
			b.Fatalf("nothing changed on disk, yet the reload reported %+v", res)
		}
	}
	b.ReportMetric(float64(processCPU()-cpuBefore)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
