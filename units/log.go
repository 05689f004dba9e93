package units

import (
	"fmt"
	"os"
	"strconv"
)

// Level is the priority of one of the manager's log lines, numbered as
// syslog's and systemd's (0 emerg .. 7 debug), so consumers such as PID 1's
// console filter or a journal can use it as it is. The code that writes a
// line decides its level, after the level systemd gives the same message
// (log_unit_error, log_unit_warning, ...): a consumer never guesses it from
// the words.
type Level int

// The syslog priorities.
const (
	LevelEmerg Level = iota
	LevelAlert
	LevelCrit
	LevelErr
	LevelWarning
	LevelNotice
	LevelInfo
	LevelDebug
)

// String is the level's syslog name ("err", "warning", ...), or its number
// if it is out of range.
func (l Level) String() string {
	if l < LevelEmerg || l > LevelDebug {
		return strconv.Itoa(int(l))
	}
	return [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}[l]
}

// logAt writes one line of the manager's log at a level: to Options.Log if
// set; else to Options.Logf, which gets the plain text as before levels
// existed; else to stderr.
func (m *Manager) logAt(level Level, format string, args ...any) {
	switch {
	case m.opts.Log != nil:
		m.opts.Log(level, fmt.Sprintf(format, args...))
	case m.opts.Logf != nil:
		m.opts.Logf(format, args...)
	default:
		fmt.Fprintf(os.Stderr, "vigil: "+format+"\n", args...)
	}
}

// LogAt writes a line to the manager's log at a level.
func (m *Manager) LogAt(level Level, format string, args ...any) { m.logAt(level, format, args...) }

func (m *Manager) errorf(format string, args ...any)  { m.logAt(LevelErr, format, args...) }
func (m *Manager) warnf(format string, args ...any)   { m.logAt(LevelWarning, format, args...) }
func (m *Manager) noticef(format string, args ...any) { m.logAt(LevelNotice, format, args...) }
func (m *Manager) infof(format string, args ...any)   { m.logAt(LevelInfo, format, args...) }
func (m *Manager) debugf(format string, args ...any)  { m.logAt(LevelDebug, format, args...) }

// logAt writes a line about the unit to the unit's own log and, prefixed
// with its name, to the manager's.
func (u *Unit) logAt(level Level, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if u.m.opts.Logs != nil {
		u.m.opts.Logs.Append(u.Name, "vigil", line)
	}
	u.m.logAt(level, "%s: %s", u.Name, line)
}

// LogAt writes a line to the unit's log and the manager's log at a level.
func (u *Unit) LogAt(level Level, format string, args ...any) { u.logAt(level, format, args...) }

func (u *Unit) errorf(format string, args ...any)  { u.logAt(LevelErr, format, args...) }
func (u *Unit) warnf(format string, args ...any)   { u.logAt(LevelWarning, format, args...) }
func (u *Unit) noticef(format string, args ...any) { u.logAt(LevelNotice, format, args...) }
func (u *Unit) infof(format string, args ...any)   { u.logAt(LevelInfo, format, args...) }
func (u *Unit) debugf(format string, args ...any)  { u.logAt(LevelDebug, format, args...) }

// exitLevel is the level of a "process exited" line, as systemd's: debug
// for an exit that counts as success, notice for one that does not.
func exitLevel(success bool) Level {
	if success {
		return LevelDebug
	}
	return LevelNotice
}
