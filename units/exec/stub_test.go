package exec

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testStub is the shared stub, or a skip where this architecture has none.
func testStub(t *testing.T) *Stub {
	t.Helper()
	stub, err := stubForTests()
	if errors.Is(err, ErrNoStub) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("NewStub: %v", err)
	}
	return stub
}

// TestStubELF parses the generated executable as the kernel will load it.
func TestStubELF(t *testing.T) {
	code, machine := stubCode, stubMachine
	if code == nil {
		code, machine = []byte{0xcc, 0xcc, 0xcc}, elf.EM_X86_64 // the builder is the same everywhere
	}
	image := buildStubELF(machine, code)
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		t.Fatalf("debug/elf cannot parse the stub: %v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_EXEC || f.Machine != machine || f.OSABI != elf.ELFOSABI_NONE {
		t.Errorf("header: class %v data %v type %v machine %v abi %v", f.Class, f.Data, f.Type, f.Machine, f.OSABI)
	}
	if len(f.Sections) != 0 {
		t.Errorf("%d sections, want none", len(f.Sections))
	}
	var load, stack *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if load != nil {
				t.Error("more than one PT_LOAD")
			}
			load = p
		case elf.PT_GNU_STACK:
			stack = p
		default:
			t.Errorf("unexpected segment %v", p.Type)
		}
	}
	if load == nil || stack == nil {
		t.Fatalf("segments: load %v stack %v", load, stack)
	}
	if load.Flags != elf.PF_R|elf.PF_X || load.Off != 0 || load.Filesz != uint64(len(image)) || load.Memsz != load.Filesz {
		t.Errorf("PT_LOAD %+v does not map the whole file read+execute", load.ProgHeader)
	}
	if load.Vaddr%load.Align != 0 || load.Vaddr < 0x10000 {
		t.Errorf("PT_LOAD at %#x, align %#x: not loadable", load.Vaddr, load.Align)
	}
	if stack.Flags&elf.PF_X != 0 {
		t.Errorf("PT_GNU_STACK %v asks for an executable stack", stack.Flags)
	}
	entry := f.Entry - load.Vaddr
	if f.Entry < load.Vaddr || entry+uint64(len(code)) != load.Filesz {
		t.Fatalf("entry %#x: not the code at the end of the segment [%#x, %#x)", f.Entry, load.Vaddr, load.Vaddr+load.Memsz)
	}
	if !bytes.Equal(image[entry:], code) {
		t.Error("the bytes at the entry point are not the stub's code")
	}
	if len(image) > 512 {
		t.Errorf("the stub is %d bytes: not tiny any more", len(image))
	}
}

// TestStubIsSealed: nobody, root included, can change the stub once made.
func TestStubIsSealed(t *testing.T) {
	stub := testStub(t)
	path := "/proc/self/fd/" + strconv.Itoa(int(stub.File().Fd()))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open the memfd again: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0x90}, int64(len(buildStubELF(stubMachine, stubCode))-1)); !errors.Is(err, unix.EPERM) {
		t.Errorf("writing into the stub: %v, want EPERM (sealed)", err)
	}
	if err := f.Truncate(0); !errors.Is(err, unix.EPERM) {
		t.Errorf("truncating the stub: %v, want EPERM (sealed)", err)
	}
}

// TestStubRunsLikeDirect: through the stub the program sees what a direct
// start gives it: argv (argv[0] the unit's, not the stub's), environment,
// the passed fds at the same numbers and no other, and /proc/PID/exe and
// comm of the program.
func TestStubRunsLikeDirect(t *testing.T) {
	testStub(t)
	script := `echo "args: $0|$1|$2"
echo "cmdline: $(tr '\0' ' ' </proc/$$/cmdline)"
echo "comm: $(cat /proc/$$/comm)"
echo "exe: $(readlink /proc/$$/exe)"
echo "env: $FOO|$BAR"
cd /proc/$$/fd && echo "fds:" *
cat <&3; cat <&4`
	outputs := map[string]string{}
	for _, m := range []string{"direct", "stub"} {
		var files []*os.File
		for _, text := range []string{"fd 3 here\n", "fd 4 here\n"} {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			w.WriteString(text)
			w.Close()
			defer r.Close()
			files = append(files, r)
		}
		spec := Spec{
			Path: "/bin/sh", Argv: []string{"my-service", "-c", script, "zero", "one two", "three"},
			Env: []string{"FOO=foo value", "BAR="}, ExtraFiles: files, Setsid: true,
		}
		if m == "stub" {
			spec = withStub(spec)
		}
		out, ws, st := run(t, spec)
		if ws.ExitStatus() != 0 || st.Stubbed != (m == "stub") {
			t.Fatalf("%s: status %v, stubbed %v, output %q", m, ws, st.Stubbed, out)
		}
		// The shell's own pid differs; everything else must not, the list
		// of open fds included (neither the status pipe nor the memfd may
		// leak into the program).
		outputs[m] = strings.ReplaceAll(out, strconv.Itoa(st.PID), "PID")
	}
	if outputs["stub"] != outputs["direct"] {
		t.Errorf("the stub's start differs from a direct one:\nstub:\n%s\ndirect:\n%s", outputs["stub"], outputs["direct"])
	}
	for _, want := range []string{"args: zero|one two|three\n", "cmdline: my-service -c ", "comm: sh\n", "env: foo value|\n", "fd 3 here\nfd 4 here\n"} {
		if !strings.Contains(outputs["stub"], want) {
			t.Errorf("output lacks %q:\n%s", want, outputs["stub"])
		}
	}
}

// TestStubExecErrorsMatchDirect: a program that cannot be exec'd gives the
// same *ExecError through the stub as a direct start, and no child stays.
func TestStubExecErrorsMatchDirect(t *testing.T) {
	testStub(t)
	notExec := t.TempDir() + "/not-executable"
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	garbage := t.TempDir() + "/garbage"
	os.WriteFile(garbage, []byte("\x7fELF not really"), 0o755)
	for _, path := range []string{"/nonexistent/x", notExec, garbage, "/etc"} {
		spec := Spec{Path: path, Argv: []string{"x"}}
		_, direct := Start(&spec)
		stubbed := withStub(spec)
		_, viaStub := Start(&stubbed)
		if direct == nil || viaStub == nil || direct.Error() != viaStub.Error() {
			t.Errorf("%s: direct %v, stub %v", path, direct, viaStub)
			continue
		}
		de, _ := errors.AsType[*ExecError](direct)
		se, ok := errors.AsType[*ExecError](viaStub)
		if !ok || se.Step != de.Step || se.Step != StepExec || !errors.Is(se.Err, de.Err) || se.StatusName() != "203/EXEC" {
			t.Errorf("%s: stub error %#v, direct %#v", path, se, de)
		}
		if pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
			t.Errorf("%s: a child is left: wait4 = %d, %v", path, pid, err)
		}
	}
}

// TestStubOnlyWhenNothingElseIsNeeded: a setting only the trampoline
// applies, or a root directory, sends the start through the trampoline
// even with a stub.
func TestStubOnlyWhenNothingElseIsNeeded(t *testing.T) {
	stub := testStub(t)
	zero := 0
	for name, spec := range map[string]Spec{
		"nice":       {Nice: &zero},
		"listen-fds": {ListenFDs: true},
		"root":       {RootDirectory: "/"},
	} {
		spec.Path, spec.Argv, spec.Trampoline, spec.Stub = "/bin/true", []string{"true"}, true, stub
		_, ws, st := run(t, spec)
		if ws.ExitStatus() != 0 || !st.Trampolined || st.Stubbed {
			t.Errorf("%s: status %v, trampolined %v, stubbed %v; want the trampoline", name, ws, st.Trampolined, st.Stubbed)
		}
	}
}

// TestClosedStubFallsBackToTrampoline: a stub that cannot run any more
// costs speed, not the start.
func TestClosedStubFallsBackToTrampoline(t *testing.T) {
	testStub(t)
	stub, err := NewStub()
	if err != nil {
		t.Fatal(err)
	}
	stub.Close()
	out, ws, st := run(t, Spec{Path: "/bin/echo", Argv: []string{"echo", "still", "runs"}, Trampoline: true, Stub: stub})
	if out != "still runs\n" || ws.ExitStatus() != 0 || !st.Trampolined || st.Stubbed {
		t.Errorf("got %q, %v, trampolined %v, stubbed %v", out, ws, st.Trampolined, st.Stubbed)
	}
}

// TestStubRefusesBadArguments runs the stub by hand: without its
// arguments, or with a status fd that is not a number above the standard
// streams, it exits 203 without exec'ing anything.
func TestStubRefusesBadArguments(t *testing.T) {
	stub := testStub(t)
	for _, args := range [][]string{
		nil,
		{"3", "/bin/echo"},
		{"", "/bin/echo", "echo", "ran"},
		{"2", "/bin/echo", "echo", "ran"},
		{"3x", "/bin/echo", "echo", "ran"},
		{"99999999999", "/bin/echo", "echo", "ran"},
	} {
		cmd := exec.Command("/proc/self/fd/3", args...)
		cmd.Args[0] = StubArg0
		cmd.ExtraFiles = []*os.File{stub.File()}
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 203 || len(out) != 0 {
			t.Errorf("stub %q: %v, output %q; want exit 203 and nothing run", args, err, out)
		}
	}
	// With good arguments it runs the program (fd 3 is the status fd, its
	// own memfd is fd 4 here).
	cmd := exec.Command("/proc/self/fd/4", "3", "/bin/echo", "echo", "ran")
	cmd.Args[0] = StubArg0
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w, stub.File()}
	out, err := cmd.Output()
	w.Close()
	if err != nil || string(out) != "ran\n" {
		t.Errorf("stub with good arguments: %v, output %q", err, out)
	}
}

func BenchmarkNewStub(b *testing.B) {
	for b.Loop() {
		stub, err := NewStub()
		if err != nil {
			b.Fatal(err)
		}
		stub.Close()
	}
}
