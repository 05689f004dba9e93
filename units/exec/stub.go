package exec

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StubArg0 is argv[0] of the exec stub (ps may show it for the instant
// before the stub execs the program). argv[1] is the status fd in decimal,
// argv[2] the program's path, argv[3:] the program's argv.
const StubArg0 = "vigil-exec-stub"

// ErrNoStub is returned by NewStub on an architecture without stub code.
var ErrNoStub = errors.New("no exec stub for " + runtime.GOARCH)

// errStubUnusable wraps a failure to run the stub itself (not the
// program): Start then goes through the trampoline instead.
var errStubUnusable = errors.New("exec stub unusable")

// stubProbe is a program that does not exist, exec'd through the stub by
// NewStub to see it work.
const stubProbe = "/nonexistent/vigil-exec-stub-probe"

// Stub is the exec stub: a static program of a few hundred bytes (no Go
// runtime, no libc) that a vfork child of ours execs in place of the
// program when the program's exec may be held by a fanotify group we
// answer (see the package doc). It lives in a sealed memfd: nothing can
// replace or change it, nothing can remove it while the Stub is open, and
// no mount or file system mark by path covers it. Create it once with
// NewStub and set it as Spec.Stub; it is safe for concurrent Starts.
type Stub struct {
	file *os.File
}

// NewStub writes the stub into a sealed memfd and checks, by running it
// once, that this kernel runs it and that it reports a failed exec. It
// returns ErrNoStub on architectures without stub code.
func NewStub() (*Stub, error) {
	if stubCode == nil {
		return nil, ErrNoStub
	}
	image := buildStubELF(stubMachine, stubCode)
	fd, err := unix.MemfdCreate(StubArg0, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 6.3 know no MFD_EXEC; their memfds are executable.
		fd, err = unix.MemfdCreate(StubArg0, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("exec stub: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+StubArg0)
	if err := writeSealed(fd, image); err != nil {
		f.Close()
		return nil, fmt.Errorf("exec stub: %w", err)
	}
	s := &Stub{file: f}
	if err := s.probe(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func writeSealed(fd int, image []byte) error {
	for b := image; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write memfd: %w", err)
		}
		b = b[n:]
	}
	// Read and execute only, for anyone: a service's user runs it too.
	if err := unix.Fchmod(fd, 0o555); err != nil {
		return fmt.Errorf("chmod memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	return nil
}

// probe execs a missing program through the stub: the stub must report
// ENOENT on its status pipe, which proves the kernel runs it from the memfd
// (through /proc/self/fd) and that it reports failed execs.
func (s *Stub) probe() error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("exec stub: probe: %w", err)
	}
	defer null.Close()
	files := []uintptr{null.Fd(), null.Fd(), null.Fd()}
	_, err = startStub(&Spec{}, s, stubProbe, []string{"probe"}, nil, files, &syscall.SysProcAttr{})
	if ee, ok := errors.AsType[*ExecError](err); ok && ee.Step == StepExec && errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("exec stub: probe: the exec of %s succeeded", stubProbe)
	}
	return fmt.Errorf("exec stub: probe: %w", err)
}

// File is the memfd holding the stub, for marking it (observer/fanotify's
// AddOwnImage). The caller must not close it.
func (s *Stub) File() *os.File { return s.file }

// Close closes the memfd. Starts that use the Stub afterwards go through
// the trampoline.
func (s *Stub) Close() error { return s.file.Close() }

// startStub starts the program as startDirect does, except that the vfork
// child execs the stub, which then execs the program: a held exec of the
// program holds the stub, an ordinary process, while this goroutine waits
// in a preemptible read of the status pipe. The child gets the status pipe
// and the stub's memfd as the two fds after spec's (so socket activation's
// numbering is kept); the stub marks both close-on-exec. The pipe reaches
// EOF on the program's exec, or brings the exec's errno.
func startStub(spec *Spec, stub *Stub, path string, argv, env []string, files []uintptr, sys *syscall.SysProcAttr) (int, error) {
	stubFD, err := rawFD(stub.file)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errStubUnusable, err)
	}
	// A raw pipe, read with poll and read below (system calls the
	// collector does not wait for): an os.Pipe would cost two epoll
	// registrations and a wake-up through the poller per start.
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		return 0, &ExecError{Step: StepFDs, Subject: "status pipe", Err: err}
	}
	statusRead, statusWrite := pipe[0], pipe[1]
	defer unix.Close(statusRead)
	statusFD := len(files)
	files = append(files[:len(files):len(files)], uintptr(statusWrite), stubFD)
	stubPath := "/proc/self/fd/" + strconv.Itoa(statusFD+1)
	stubArgv := append([]string{StubArg0, strconv.Itoa(statusFD), path}, argv...)
	dir := directAttr(spec, sys)
	pid, err := syscall.ForkExec(stubPath, stubArgv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys})
	unix.Close(statusWrite)
	runtime.KeepAlive(stub.file)
	if err != nil {
		diagnosed := diagnoseForkExec(spec, stubPath, dir, err)
		if step, _ := StepOf(diagnosed); step == StepExec {
			// The stub did not run (no /proc, a memfd that cannot be
			// executed): nothing said about the program yet.
			return 0, fmt.Errorf("%w: %w", errStubUnusable, diagnosed)
		}
		return 0, diagnosed
	}
	report, readErr := readStatus(statusRead, time.Now().Add(trampolineDeadline))
	if readErr == nil && len(report) == 0 {
		return pid, nil
	}
	collectFailedChild(pid)
	switch {
	case errors.Is(readErr, os.ErrDeadlineExceeded):
		return 0, &ExecError{Step: StepFDs, Subject: StubArg0, Err: fmt.Errorf("no report from the exec stub within %v", trampolineDeadline)}
	case readErr != nil:
		return 0, &ExecError{Step: StepFDs, Subject: "status pipe", Err: readErr}
	case len(report) != 4:
		return 0, &ExecError{Step: StepFDs, Subject: StubArg0, Err: fmt.Errorf("garbled status report %q", report)}
	}
	return 0, &ExecError{Step: StepExec, Subject: path, Err: syscall.Errno(binary.LittleEndian.Uint32(report))}
}

// readStatus reads the status pipe until EOF (at most 64 bytes), waiting
// in poll(2) until deadline. A timeout is os.ErrDeadlineExceeded.
func readStatus(fd int, deadline time.Time) ([]byte, error) {
	var buf [64]byte
	n := 0
	for n < len(buf) {
		left := time.Until(deadline)
		if left <= 0 {
			return buf[:n], os.ErrDeadlineExceeded
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		ready, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR || (err == nil && ready == 0) {
			continue
		}
		if err != nil {
			return buf[:n], fmt.Errorf("poll: %w", err)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return buf[:n], err
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
	return buf[:n], nil
}

// stubBase is the address the stub is loaded at: the usual base of static
// x86-64 executables, far above vm.mmap_min_addr.
const stubBase = 0x400000

// buildStubELF wraps code into a static little-endian ELF64 executable: the
// file header, a PT_LOAD segment mapping the whole file read+execute at
// stubBase (the code right after the program headers is the entry point),
// and a PT_GNU_STACK segment asking for a non-executable stack. No section
// headers: the kernel needs none.
func buildStubELF(machine elf.Machine, code []byte) []byte {
	const (
		headerSize  = 64 // sizeof(Elf64_Ehdr)
		progSize    = 56 // sizeof(Elf64_Phdr)
		progCount   = 2
		codeOffset  = headerSize + progCount*progSize
		segmentAlgn = 0x1000
	)
	size := uint64(codeOffset + len(code))
	header := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     stubBase + codeOffset,
		Phoff:     headerSize,
		Ehsize:    headerSize,
		Phentsize: progSize,
		Phnum:     progCount,
	}
	copy(header.Ident[:], elf.ELFMAG)
	header.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	header.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	header.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	header.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	progs := [progCount]elf.Prog64{
		{
			Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
			Off: 0, Vaddr: stubBase, Paddr: stubBase, Filesz: size, Memsz: size, Align: segmentAlgn,
		},
		{Type: uint32(elf.PT_GNU_STACK), Flags: uint32(elf.PF_R | elf.PF_W), Align: 16},
	}
	var b bytes.Buffer
	b.Grow(int(size))
	// Writes to a bytes.Buffer of fixed-size values cannot fail.
	binary.Write(&b, binary.LittleEndian, &header)
	binary.Write(&b, binary.LittleEndian, &progs)
	b.Write(code)
	return b.Bytes()
}
