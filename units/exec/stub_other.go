//go:build !amd64

package exec

import "debug/elf"

// No exec stub for this architecture: NewStub returns ErrNoStub and held
// execs go through the trampoline.
const stubMachine = elf.EM_NONE

var stubCode []byte
