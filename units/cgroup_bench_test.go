package units

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/api"
)

// benchStartOneshots measures starting 1,000 oneshot units through a full
// manager (reaper, loop) whose options configure may change per run.
func benchStartOneshots(b *testing.B, configure func(*Options)) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		h := &harness{t: b, dir: dir, units: filepath.Join(dir, "units")}
		writeOneshots(b, h.units, 1000)
		h.loop = observer.New(observer.Options{Logf: func(string, ...any) {}})
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		if _, err := process.Start(ctx, h.loop); err != nil {
			b.Fatal(err)
		}
		opts := Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"), Logf: func(string, ...any) {}}
		configure(&opts)
		m, err := New(h.loop, opts)
		if err != nil {
			b.Fatal(err)
		}
		h.m = m
		h.done = make(chan struct{})
		go func() { h.loop.Run(ctx); close(h.done) }()
		b.StartTimer()
		begin := time.Now()
		if res, why := h.start("all.target"); res != api.ResultDone {
			b.Fatalf("all.target: %s (%s)", res, why)
		}
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

// BenchmarkStart1000OneshotsCgroups is BenchmarkStart1000Oneshots with
// every unit in its own cgroup: created, born into, watched and removed.
func BenchmarkStart1000OneshotsCgroups(b *testing.B) {
	benchStartOneshots(b, func(o *Options) { o.Cgroups = testCgroupTree(b) })
}
