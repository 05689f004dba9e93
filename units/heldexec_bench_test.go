package units

import (
	"errors"
	"sync/atomic"
	"testing"

	"vigil/units/exec"
)

// trampolineSpawner starts every process through the trampoline, as PID 1
// does while a fanotify mark exists and the exec stub cannot do it
// (init/heldexec.go).
type trampolineSpawner struct{}

func (trampolineSpawner) Spawn(spec *exec.Spec) (*exec.Started, error) {
	s := *spec
	s.Trampoline = true
	return exec.Start(&s)
}

// stubSpawner starts every process as PID 1 does while a fanotify mark
// exists: through the exec stub where no setting needs the trampoline.
// It counts the starts that went another way, so that the figure cannot
// silently be the trampoline's.
type stubSpawner struct {
	stub       *exec.Stub
	notStubbed atomic.Int64
}

func (sp *stubSpawner) Spawn(spec *exec.Spec) (*exec.Started, error) {
	s := *spec
	s.Trampoline = true
	s.Stub = sp.stub
	st, err := exec.Start(&s)
	if err == nil && !st.Stubbed {
		sp.notStubbed.Add(1)
	}
	return st, err
}

// BenchmarkStart1000OneshotsTrampolined is BenchmarkStart1000Oneshots with
// every start going through the trampoline: the price of starting processes
// while some fanotify mark could hold their exec, without the stub.
func BenchmarkStart1000OneshotsTrampolined(b *testing.B) {
	benchStartOneshots(b, func(o *Options) { o.Spawner = trampolineSpawner{} })
}

// BenchmarkStart1000OneshotsStubbed is BenchmarkStart1000Oneshots with
// every start going through the exec stub: the price of starting processes
// while some fanotify mark could hold their exec.
func BenchmarkStart1000OneshotsStubbed(b *testing.B) {
	stub, err := exec.NewStub()
	if errors.Is(err, exec.ErrNoStub) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer stub.Close()
	sp := &stubSpawner{stub: stub}
	benchStartOneshots(b, func(o *Options) { o.Spawner = sp })
	if n := sp.notStubbed.Load(); n > 0 {
		b.Fatalf("%d starts did not go through the stub", n)
	}
}
