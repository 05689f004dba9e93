package units

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/api"
	"vigil/units/exec"
)

// trampolineSpawner starts every process through the trampoline, as PID 1
// does while a fanotify mark exists (init/heldexec.go).
type trampolineSpawner struct{}

func (trampolineSpawner) Spawn(spec *exec.Spec) (*exec.Started, error) {
	s := *spec
	s.Trampoline = true
	return exec.Start(&s)
}

// BenchmarkStart1000OneshotsTrampolined is BenchmarkStart1000Oneshots with
// every start going through the trampoline: the price of starting processes
// while some fanotify mark could hold their exec.
func BenchmarkStart1000OneshotsTrampolined(b *testing.B) {
	for b.Loop() {
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
		m, err := New(h.loop, Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"),
			Logf: func(string, ...any) {}, Spawner: trampolineSpawner{}})
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
