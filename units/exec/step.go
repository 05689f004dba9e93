package exec

import (
	"errors"
	"fmt"
	"strconv"
)

// Step names what the child was doing when it failed. Its ExitStatus is the
// status systemd reports for that failure, so the manager can record
// "status=203/EXEC" the way systemctl users expect.
type Step int

// Steps of starting a process, in the order the trampoline runs them.
const (
	StepFDs          Step = iota // setting up descriptors or decoding settings
	StepCgroup                   // being born in the cgroup (clone3)
	StepStdin                    // opening standard input
	StepStdout                   // opening standard output
	StepStderr                   // opening standard error
	StepLimits                   // setrlimit
	StepNice                     // setpriority
	StepChroot                   // chroot to RootDirectory
	StepCapabilities             // bounding set, keep-caps, ambient set
	StepGroup                    // setgroups, setgid
	StepUser                     // setuid
	StepChdir                    // chdir to Dir
	StepNoNewPrivileges
	StepExec // execve of the program
)

var stepInfo = [...]struct {
	status int
	name   string // systemd's name for the status
	verb   string // what failed, for error messages
}{
	StepFDs:             {202, "FDS", "set up file descriptors"},
	StepCgroup:          {219, "CGROUP", "enter cgroup"},
	StepStdin:           {208, "STDIN", "open stdin"},
	StepStdout:          {209, "STDOUT", "open stdout"},
	StepStderr:          {222, "STDERR", "open stderr"},
	StepLimits:          {205, "LIMITS", "set resource limit"},
	StepNice:            {201, "NICE", "set nice level"},
	StepChroot:          {210, "CHROOT", "chroot"},
	StepCapabilities:    {218, "CAPABILITIES", "set capabilities"},
	StepGroup:           {216, "GROUP", "set group"},
	StepUser:            {217, "USER", "set user"},
	StepChdir:           {200, "CHDIR", "chdir"},
	StepNoNewPrivileges: {227, "NO_NEW_PRIVILEGES", "set no_new_privs"},
	StepExec:            {203, "EXEC", "exec"},
}

func (s Step) valid() bool { return s >= 0 && int(s) < len(stepInfo) }

// ExitStatus is the exit status systemd uses for a failure at this step
// (203 for StepExec).
func (s Step) ExitStatus() int {
	if !s.valid() {
		return 202
	}
	return stepInfo[s].status
}

// String is systemd's name of the exit status, e.g. "EXEC".
func (s Step) String() string {
	if !s.valid() {
		return "Step(" + strconv.Itoa(int(s)) + ")"
	}
	return stepInfo[s].name
}

// ExecError is a failure to start a process. When it comes from Start, no
// process is left to track.
type ExecError struct {
	Step Step
	// Subject is what the step was applied to: the program path, the
	// directory, the resource name...
	Subject string
	Err     error
}

func (e *ExecError) Error() string {
	verb := "start"
	if e.Step.valid() {
		verb = stepInfo[e.Step].verb
	}
	if e.Subject == "" {
		return fmt.Sprintf("%s: %v", verb, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", verb, e.Subject, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExitStatus is the status systemd would report for this failure, e.g. 203.
func (e *ExecError) ExitStatus() int { return e.Step.ExitStatus() }

// StatusName formats the failure like systemd: "203/EXEC".
func (e *ExecError) StatusName() string {
	return strconv.Itoa(e.ExitStatus()) + "/" + e.Step.String()
}

// StepOf returns the step of an *ExecError in err's chain, and false when err
// has none.
func StepOf(err error) (Step, bool) {
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.Step, true
	}
	return 0, false
}
