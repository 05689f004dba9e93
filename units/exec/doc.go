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
// directly, which is faster (see BenchmarkStart).
//
// A binary that may act as the trampoline calls IsTrampoline(os.Args[0]) and
// TrampolineMain first thing in main (cmd/vigil does; so does this package's
// TestMain).
package exec
