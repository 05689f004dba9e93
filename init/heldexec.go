package pid1

import (
	"debug/elf"
	"fmt"
	"strings"
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
// held off until the fork is done; otherwise through the exec stub (a tiny
// static program in a sealed memfd that the source counts as our own
// image: never held, its children answered inline), or through the
// trampoline where the stub cannot do it (settings only the trampoline
// applies, a root directory, no stub for this architecture).
type heldExecSpawner struct {
	files *fanotify.Source
	stub  *exec.Stub // nil: the trampoline only
}

// spawnerFor is the units.Options.Spawner for a manager with fanotify
// source files (nil: the default, since nothing can be held). It makes the
// exec stub and registers it with files before any mark can exist.
func spawnerFor(files *fanotify.Source, logf func(format string, args ...any)) units.Spawner {
	if files == nil {
		return nil
	}
	stub, err := exec.NewStub()
	if err == nil {
		if err = files.AddOwnImage(stub.File()); err != nil {
			stub.Close()
			stub = nil
		}
	}
	if err != nil {
		logf("exec stub: %v (while fanotify marks exist, unit processes start through the slower trampoline)", err)
	}
	if interp, err := elfInterpreter("/proc/self/exe"); err == nil && interp != "" {
		logf("warning: vigil is dynamically linked (interpreter %s): a fanotify mark that holds opens of %s can stop the manager while it starts a process; build it with CGO_ENABLED=0", interp, interp)
	}
	return heldExecSpawner{files: files, stub: stub}
}

// elfInterpreter returns the program interpreter (PT_INTERP) an ELF file
// names, "" for a static one. Our trampoline re-executes Vigil's binary
// from a vfork child; the kernel opens a dynamic binary's interpreter in
// that window, where a held open would block the Go runtime.
func elfInterpreter(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read %s: interpreter: %w", path, err)
		}
		return strings.TrimRight(string(b), "\x00"), nil
	}
	return "", nil
}

func (s heldExecSpawner) Spawn(spec *exec.Spec) (*exec.Started, error) {
	var st *exec.Started
	var err error
	if s.files.IfUnmarked(func() { st, err = exec.Start(spec) }) {
		return st, err
	}
	around := *spec
	around.Trampoline = true
	around.Stub = s.stub
	return exec.Start(&around)
}
