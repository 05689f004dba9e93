// Package procfs owns the parsers of the per-process text files of /proc
// that the manager reads (proc(5)): stat, status and cmdline. They are
// pure functions of the file's bytes, so they are tested and fuzzed
// without a process to read; callers do the reading. The mount table
// (mountinfo) has its parser in observer/mountinfo; this package adds
// only the question the manager asks of it (IsMountPoint).
package procfs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"vigil/observer/mountinfo"
)

// Stat is the part of /proc/PID/stat the manager uses.
type Stat struct {
	PID int
	// Comm is the command name between the parentheses; it may hold
	// spaces and parentheses itself.
	Comm    string
	State   byte // R, S, D, Z, T, ...
	PPID    int
	PGRP    int
	Session int
	// StartTime is when the process started, in clock ticks after boot
	// (field 22); HasStartTime is false when the line ends before it.
	StartTime    uint64
	HasStartTime bool
}

// ErrMalformed is wrapped by the errors of text that is not what the
// kernel writes.
var ErrMalformed = errors.New("malformed")

// ParseStat parses /proc/PID/stat. The command name may contain spaces
// and ')' (a process names itself), so the fields are counted from the
// last ')'. Fields the caller may not need (the start time) are read only
// when present; a short line is an error only when it lacks the session.
func ParseStat(data []byte) (Stat, error) {
	var st Stat
	s := string(data)
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return st, fmt.Errorf("stat: no (command): %w", ErrMalformed)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return st, fmt.Errorf("stat: pid %q: %w", strings.TrimSpace(s[:open]), ErrMalformed)
	}
	st.PID, st.Comm = pid, s[open+1:end]
	// After ")": state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime ...
	f := strings.Fields(s[end+1:])
	if len(f) < 4 || len(f[0]) != 1 {
		return st, fmt.Errorf("stat: %d fields after the command, want at least 4: %w", len(f), ErrMalformed)
	}
	st.State = f[0][0]
	ints := []*int{&st.PPID, &st.PGRP, &st.Session}
	for i, p := range ints {
		v, err := strconv.Atoi(f[1+i])
		if err != nil {
			return st, fmt.Errorf("stat: field %d %q: %w", 4+i, f[1+i], ErrMalformed)
		}
		*p = v
	}
	if len(f) > 19 {
		t, err := strconv.ParseUint(f[19], 10, 64)
		if err != nil {
			return st, fmt.Errorf("stat: starttime %q: %w", f[19], ErrMalformed)
		}
		st.StartTime, st.HasStartTime = t, true
	}
	return st, nil
}

// Cmdline gives a process's command line from /proc/PID/cmdline as one
// line for listings: the NUL-separated arguments joined by spaces, with
// surrounding white space trimmed.
func Cmdline(data []byte) string {
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// StatusField gives the value of "Key:" in /proc/PID/status, trimmed;
// ok is false when the key is not there.
func StatusField(data []byte, key string) (value string, ok bool) {
	for line := range strings.Lines(string(data)) {
		if v, found := strings.CutPrefix(line, key+":"); found {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// Umask gives the Umask: field of /proc/PID/status (octal).
func Umask(status []byte) (uint32, error) {
	v, ok := StatusField(status, "Umask")
	if !ok {
		return 0, fmt.Errorf("status: no Umask: %w", ErrMalformed)
	}
	mask, err := strconv.ParseUint(v, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("status: Umask %q: %w", v, ErrMalformed)
	}
	return uint32(mask), nil
}

// IsMountPoint reports whether path (cleaned by the caller) is the mount
// point of a line of a mountinfo table (/proc/self/mountinfo). Lines that
// do not parse are skipped: one odd line must not hide the others.
func IsMountPoint(table []byte, path string) bool {
	for line := range strings.Lines(string(table)) {
		m, err := mountinfo.ParseLine(line)
		if err == nil && m.MountPoint == path {
			return true
		}
	}
	return false
}
