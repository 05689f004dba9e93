// Package exec starts the processes of units: it turns a Spec (plain values
// that the manager derives from a unit's configuration) into a running child
// process and returns its PID. It owns everything that happens between the
// manager's fork and the service's execve: credentials, environment and its
// expansion in argv, working and root directory, standard streams, passed file
// descriptors (socket activation), cgroup placement and per-process settings.
//
// # Nobody waits but the reaper
//
// The manager has exactly one wait4(-1) (observer/process). This package
// therefore never uses os/exec or os.StartProcess, whose Wait would race with
// the reaper: it forks with syscall.ForkExec and returns the PID. The manager
// learns of the exit from the reaper's event. The one exception is the same as
// ForkExec's own: when the child fails before it runs the service's program,
// Start collects that specific child itself, so an error from Start always
// means "there is no process to track" (the reaper may still report an exit for
// a PID it never heard of; the manager ignores unknown PIDs anyway).
//
// # The trampoline
//
// syscall.SysProcAttr covers credentials, setsid, the controlling tty, chroot,
// ambient capabilities and clone-into-cgroup, but not umask, nice, rlimits,
// no_new_privs, the capability bounding set or LISTEN_PID (which must be the
// child's own PID, known only after the fork). For those the child first
// re-executes the manager's own binary (Spec.Self, default /proc/self/exe)
// with argv[0] = "vigil-exec" and the encoded settings in argv[1]. That
// trampoline applies the settings in an order that works (rlimits and nice
// while still privileged, the bounding set before dropping the uid, keep-caps
// around setuid for ambient capabilities, no_new_privs last) and then execs
// the service. A failure in the trampoline is written to a close-on-exec
// status pipe that Start reads until EOF, so it comes back from Start as an
// *ExecError carrying the step that failed and systemd's exit status for it
// (203/EXEC, 200/CHDIR, ...). Specs that need none of this are started
// directly, which is faster (see BenchmarkStart), unless Spec.Trampoline
// asks for the trampoline anyway (or for the exec stub, below).
//
// # Held execs and the vfork deadlock
//
// syscall.ForkExec clones with CLONE_VFORK from a raw system call: the
// forking thread keeps its P and stays "running" in the kernel until the
// child execs. If a fanotify group answered by this process holds that exec
// (observer/fanotify answers Vigil's own children on its reader goroutine),
// a garbage collection starting meanwhile waits for the forking thread
// forever, the reader never runs again, and the process hangs (the class of
// golang/go#11155). So a program whose exec may be held must not be the
// target of our vfork: with Spec.Trampoline the vfork child execs Self,
// which the fanotify source marks ignored in the kernel (no event at all),
// and the trampoline, an ordinary process by then, execs the program while
// this process waits for the status pipe in a normal, preemptible read.
// The manager decides per start (init asks the fanotify source whether any
// mark exists; see init's spawner). Self must be built without cgo: the
// exec of a dynamic executable opens its interpreter before the vfork
// parent resumes, and that open is not covered by the ignore mark.
//
// The vfork is the only system call of a start that the collector must
// wait out (ForkExec's raw clone): every other wait is one the scheduler
// knows of (ForkExec's own pipe, the trampoline's status pipe through the
// poller, the stub's through poll(2) and read(2) by Syscall). The raw
// system calls in trampoline.go run in the trampoline and never block.
// A -race (cgo) build of the tests is dynamic: its vfork window then
// holds the interpreter's open too, which lengthens the collector's
// stops (TestHeldExecSpawnsSurviveGC logs the longest) but is held only
// if a mark covers the interpreter; the test marks only its own tmpfs.
//
// # The exec stub
//
// The trampoline costs a Go runtime start per process (8-10 times a direct
// start). When Spec.Trampoline is the only reason for it (no setting needs
// code in the child, no RootDirectory) and Spec.Stub is set, the vfork
// child execs the exec stub instead: about 160 bytes of x86-64 machine
// code in a hand-built static ELF (stub_amd64.go; buildStubELF), written
// by NewStub into a sealed memfd, so it cannot be changed, replaced or
// removed while Vigil runs, and no mount or file system mark reaches it.
// Everything SysProcAttr does (credentials, setsid, controlling tty,
// cgroup via CLONE_INTO_CGROUP, fds) still happens in Go's vfork child.
// That child gets the status pipe and the memfd as the two fds after the
// passed ones (LISTEN_FDS numbering is kept) and execs /proc/self/fd/N,
// the memfd, with argv [StubArg0, STATUS_FD, PATH, ARGV...]. The stub
// marks both fds close-on-exec and calls execve(PATH, ARGV, envp): argv[0]
// is the unit's, and /proc/PID/exe and comm become the program's. On
// failure it writes the errno (4 bytes) to the status pipe and exits 203;
// Start reads the pipe until EOF, as for the trampoline, and returns the
// same *ExecError (203/EXEC) a direct start would. The fanotify source
// must count the memfd as our own image (observer/fanotify AddOwnImage):
// an ignore mark on its inode, and its exec of the program answered
// inline, since the manager is waiting for it. NewStub runs the stub once
// (exec of a missing program) to see that the kernel runs it; a stub that
// cannot run at Start (no /proc, closed) falls back to the trampoline.
// Architectures without stub code (NewStub returns ErrNoStub) use the
// trampoline.
//
// A binary that may act as the trampoline calls IsTrampoline(os.Args[0]) and
// TrampolineMain first thing in main (cmd/vigil does; so does this package's
// TestMain).
package exec
