package units

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/api"
)

// BenchmarkScopeAdopt measures what systemd-run --scope waits for: the
// StartTransientUnit of a scope (its file written and loaded, its cgroup
// made and watched, the process moved in) up to the end of its start job.
// Each scope takes the one process from the previous one, which then
// empties and is collected in the background.
func BenchmarkScopeAdopt(b *testing.B) {
	tree := testCgroupTree(b)
	dir := b.TempDir()
	h := &harness{t: b, dir: dir, units: filepath.Join(dir, "units")}
	h.loop = observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if _, err := process.Start(ctx, h.loop); err != nil {
		b.Fatal(err)
	}
	m, err := New(h.loop, Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"),
		Logf: func(string, ...any) {}, Cgroups: tree})
	if err != nil {
		b.Fatal(err)
	}
	h.m = m
	h.done = make(chan struct{})
	go func() { h.loop.Run(ctx); close(h.done) }()
	defer h.close()
	cmd := exec.Command("/bin/sleep", "300")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer syscall.Kill(pid, syscall.SIGKILL)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := h.startTransient(scopeOf("bench-"+strconv.Itoa(i)+".scope", []int{pid}), false)
		if err != nil || res != api.ResultDone {
			b.Fatalf("scope %d: %q %v", i, res, err)
		}
	}
}
