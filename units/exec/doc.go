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
// asks for the trampoline anyway.
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
// A binary that may act as the trampoline calls IsTrampoline(os.Args[0]) and
// TrampolineMain first thing in main (cmd/vigil does; so does this package's
// TestMain).
package exec
