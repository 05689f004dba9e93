package units

import (
	"testing"

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
	benchStartOneshots(b, func(o *Options) { o.Spawner = trampolineSpawner{} })
}
