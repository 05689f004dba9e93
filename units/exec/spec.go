package exec

import (
	"os"

	"vigil/units/procfs"
)

// Spec says how to start one process. The zero value of every optional field
// means "unchanged from the manager": a Spec with only Path and Argv runs the
// program with the manager's credentials, no environment and /dev/null as
// standard streams.
type Spec struct {
	// Path is the program to run. Without a slash it is looked up in the
	// PATH of Env (or a fixed default path), below RootDirectory. Empty means
	// Argv[0].
	Path string
	// Argv is the argument vector including argv[0].
	Argv []string
	// ExpandArgv expands $VAR and ${VAR} in Argv from Env with systemd's
	// rules (see ExpandArgv).
	ExpandArgv bool
	// Env is the complete environment, as KEY=VALUE strings.
	Env []string
	// Dir is the working directory (inside RootDirectory); empty means "/"
	// when RootDirectory is set and the manager's own otherwise.
	Dir string
	// RootDirectory is chroot(2)ed into before Dir is entered.
	RootDirectory string

	// Credential sets uid, gid and supplementary groups; nil keeps the
	// manager's.
	Credential *Credential
	// Umask is set when non-nil.
	Umask *uint32
	// Nice is set when non-nil (-20..19).
	Nice *int
	// Rlimits maps resources (unix.RLIMIT_NOFILE, ...; see ParseRlimit) to
	// the limits to set.
	Rlimits map[int]Rlimit
	// NoNewPrivileges sets PR_SET_NO_NEW_PRIVS.
	NoNewPrivileges bool
	// AmbientCapabilities are raised in the ambient set (and kept across a
	// change of uid). Values are capability numbers (see ParseCapability).
	AmbientCapabilities []int
	// CapabilityBoundingSet, when non-nil, is the complete bounding set:
	// every capability not in it is dropped. An empty non-nil slice drops
	// all.
	CapabilityBoundingSet []int

	// Setsid makes the child a session leader. Services always want it (the
	// manager sets it); it matters for autofs mounts and for a tty.
	Setsid bool
	// Stdin, Stdout and Stderr say where the standard streams go. The zero
	// value is /dev/null.
	Stdin, Stdout, Stderr Stdio
	// TTYPath is the terminal for TTY streams that name none; empty means
	// /dev/console.
	TTYPath string

	// ExtraFiles are passed as fds 3, 4, ... (socket activation). Start does
	// not close them.
	ExtraFiles []*os.File
	// ListenFDs sets LISTEN_FDS (the number of ExtraFiles), LISTEN_PID (the
	// child's own PID) and, when FDNames is not empty, LISTEN_FDNAMES.
	ListenFDs bool
	FDNames   []string
	// WatchdogPID sets WATCHDOG_PID to the child's own PID, as systemd
	// does for a service with a watchdog: like LISTEN_PID it is only known
	// after the fork, so it needs the trampoline.
	WatchdogPID bool

	// CgroupFD is an O_PATH (or O_DIRECTORY) fd of a cgroup2 directory the
	// child is born in (clone3 CLONE_INTO_CGROUP). Zero or negative means
	// none: fd 0 is the manager's stdin, never a cgroup.
	CgroupFD int

	// Self is the binary that acts as the trampoline; empty means
	// /proc/self/exe.
	Self string

	// Trampoline starts the program through the trampoline even when no
	// setting needs it. Set it when the program's exec may be held by a
	// fanotify group this process answers: a direct start is a vfork, and a
	// held exec in a vfork child can deadlock the Go runtime (see the
	// package doc). The trampoline's own exec of Self is never held (the
	// fanotify source ignores our executable), and its exec of the program
	// is answered while this process waits in an ordinary read.
	Trampoline bool
	// Stub, with Trampoline, starts the program through the exec stub
	// instead of the trampoline when the trampoline is asked for only by
	// Trampoline: no setting needs it and RootDirectory is empty. The
	// stub keeps the exec of the program out of our vfork child as the
	// trampoline does, without a Go runtime start (see NewStub). A stub
	// that cannot be run falls back to the trampoline.
	Stub *Stub
}

// Credential is a resolved user: numbers, not names (see LookupUser and
// LookupGroup).
type Credential struct {
	UID, GID            uint32
	SupplementaryGroups []uint32
}

// Rlimit is a soft (Cur) and hard (Max) limit; RlimInfinity is unlimited.
type Rlimit struct {
	Cur, Max uint64
}

// RlimInfinity is the "unlimited" value of an Rlimit.
const RlimInfinity = ^uint64(0)

// StdioKind says what a standard stream is connected to.
type StdioKind int

// Kinds of standard stream.
const (
	// StdioNull is /dev/null (the zero value).
	StdioNull StdioKind = iota
	// StdioInherit is the manager's own stream of the same number.
	StdioInherit
	// StdioTTY is a terminal: Stdio.Path, else Spec.TTYPath, else
	// /dev/console. A TTY stdin becomes the controlling terminal (with
	// Setsid).
	StdioTTY
	// StdioFile is a file (Stdio.Path); for output it is created 0644 if
	// missing and opened as Stdio.Open says; stdin opens it read-only.
	StdioFile
	// StdioPipe is a pipe whose read end the caller gets in Started (for log
	// capture). Only for stdout and stderr.
	StdioPipe
	// StdioFD is a descriptor of the caller (a socket, an inherited fd):
	// Stdio.FD. Start does not close it.
	StdioFD
	// StdioStdout makes stderr the same descriptor as stdout (systemd's
	// StandardError=inherit). Only for stderr.
	StdioStdout
)

// Stdio is one standard stream. Build it with the Stdio* functions.
type Stdio struct {
	Kind StdioKind
	Path string
	Open FileOpen
	FD   int
}

// FileOpen says how an output file is opened, as systemd's file:,
// append: and truncate: do.
type FileOpen int

// Ways to open an output file.
const (
	// FileOverwrite writes from offset 0 without truncating (file:PATH).
	FileOverwrite FileOpen = iota
	// FileAppend appends (append:PATH).
	FileAppend
	// FileTruncate truncates first (truncate:PATH).
	FileTruncate
)

// Null connects a stream to /dev/null.
func Null() Stdio { return Stdio{Kind: StdioNull} }

// Inherit connects a stream to the manager's own stream of the same number.
func Inherit() Stdio { return Stdio{Kind: StdioInherit} }

// TTY connects a stream to a terminal; empty path means Spec.TTYPath.
func TTY(path string) Stdio { return Stdio{Kind: StdioTTY, Path: path} }

// File connects a stream to a file, opened as how says.
func File(path string, how FileOpen) Stdio {
	return Stdio{Kind: StdioFile, Path: path, Open: how}
}

// Pipe connects stdout or stderr to a pipe the caller reads.
func Pipe() Stdio { return Stdio{Kind: StdioPipe} }

// FD connects a stream to an open descriptor of the caller.
func FD(fd int) Stdio { return Stdio{Kind: StdioFD, FD: fd} }

// SameAsStdout makes stderr share stdout's descriptor.
func SameAsStdout() Stdio { return Stdio{Kind: StdioStdout} }

// Started is a running child.
type Started struct {
	PID int
	// Stdout and Stderr are the read ends of StdioPipe streams, else nil.
	// When stderr is SameAsStdout a pipe stdout carries both.
	Stdout, Stderr *os.File
	// Trampolined says whether the child went through the trampoline,
	// Stubbed whether through the exec stub.
	Trampolined, Stubbed bool
}

// needsTrampolineSettings reports whether some setting needs code in the
// child (Trampoline aside). A umask equal to the manager's is inherited
// anyway: services commonly ask for systemd's default 0022, and the
// trampoline costs a Go runtime start.
func (s *Spec) needsTrampolineSettings() bool {
	umaskDiffers := s.Umask != nil && !umaskIs(*s.Umask)
	return umaskDiffers || s.Nice != nil || len(s.Rlimits) > 0 ||
		s.NoNewPrivileges || s.CapabilityBoundingSet != nil || s.ListenFDs || s.WatchdogPID
}

// umaskIs reports whether the manager's umask is mask. It reads
// /proc/self/status because umask(2) cannot read without writing, and
// writing would race with other goroutines creating files.
func umaskIs(mask uint32) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	cur, err := procfs.Umask(b)
	return err == nil && cur == mask
}
