package pid1

import (
	"time"

	"vigil/observer/fanotify"
	"vigil/units"
	"vigil/units/exec"
)

// fileHoldBackstop is the fanotify source's own deadline for a held access
// (fanotify Options.Deadline), the safety net for a loop that never
// answers. It sits above path units' default hold-timeout (90 s) so that a
// unit's own timeout and hold-verdict decide; a path unit asking for more
// is warned about at start and shows the shorter effective timeout in
// status (docs/fanotify.md).
const fileHoldBackstop = 5 * time.Minute

// heldExecSpawner starts unit processes so that none of Vigil's vfork
// children has an exec the fanotify source could hold (see units/exec's
// package doc: a held exec in a vfork child can deadlock the Go runtime).
// While the group has no marks, programs start directly, with mark changes
// held off until the fork is done; otherwise through the trampoline, whose
// exec of Vigil's own binary the source ignores in the kernel.
type heldExecSpawner struct {
	files *fanotify.Source
}

// spawnerFor is the units.Options.Spawner for a manager with fanotify
// source files (nil: the default, since nothing can be held).
func spawnerFor(files *fanotify.Source) units.Spawner {
	if files == nil {
		return nil
	}
	return heldExecSpawner{files: files}
}

func (s heldExecSpawner) Spawn(spec *exec.Spec) (*exec.Started, error) {
	var st *exec.Started
	var err error
	if s.files.IfUnmarked(func() { st, err = exec.Start(spec) }) {
		return st, err
	}
	trampolined := *spec
	trampolined.Trampoline = true
	return exec.Start(&trampolined)
}
