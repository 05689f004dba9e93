package units

import (
	"fmt"
	"sort"
	"time"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// Jobs that run longer than Options.SlowJobAfter (default 3 s) are
// announced on the console, one at a time in turn, as often, as systemd's
// "A start job is running for ..." lines: the administrator sees what the
// boot or the shutdown waits for, and how long it may still wait.
const defaultSlowJobAfter = 3 * time.Second

// timeouts lets a behaviour say how long a job of a type may take.
type timeouts interface {
	jobTimeout(jobType string) time.Duration
}

// watchSlowJobs arms the announcement timer when a job starts running.
func (m *Manager) watchSlowJobs() {
	if m.slowTimer != 0 || m.opts.Console == nil {
		return
	}
	m.slowTimer = m.AfterFunc(m.opts.SlowJobAfter, m.announceSlowJobs)
}

func (m *Manager) announceSlowJobs() {
	m.slowTimer = 0
	now := time.Now()
	var slow []*Job
	running := false
	for _, j := range m.jobs {
		if j.State != jobRunning {
			continue
		}
		running = true
		if now.Sub(j.begun) >= m.opts.SlowJobAfter {
			slow = append(slow, j)
		}
	}
	if len(slow) > 0 && !m.unitOnConsole() {
		sort.Slice(slow, func(a, b int) bool { return slow[a].ID < slow[b].ID })
		j := slow[m.slowTurn%len(slow)]
		m.slowTurn++
		m.consoleLine(consoleInfo, "%s", slowJobMessage(j, now))
	}
	if running {
		m.slowTimer = m.AfterFunc(m.opts.SlowJobAfter, m.announceSlowJobs)
	}
}

// unitOnConsole tells whether a unit that may write to the console (or read
// from it) has processes now: systemd keeps its status lines off the
// console then (manager_ref_console), so they do not break into a shell's,
// a prompt's or a script's lines.
func (m *Manager) unitOnConsole() bool {
	for name, u := range m.units {
		if name != u.Name {
			continue // an alias
		}
		if active, _ := u.Active(); active == StateInactive || active == StateFailed {
			continue
		}
		if ec := u.execContext(); ec != nil && mayTouchConsole(ec) {
			return true
		}
	}
	return false
}

// mayTouchConsole is systemd's exec_context_may_touch_console: standard
// input, output or error on a terminal, or output copied to the console.
func mayTouchConsole(ec *unitfile.ExecContext) bool {
	for _, k := range []unitfile.StdIOKind{ec.StandardInput.Kind, ec.StandardOutput.Kind, ec.StandardError.Kind} {
		switch k {
		case unitfile.StdIOTTY, unitfile.StdIOTTYForce, unitfile.StdIOTTYFail, unitfile.StdIOLogConsole:
			return true
		}
	}
	return false
}

// slowJobMessage reads "A stop job is running for Foo (12s / 1min 30s)".
func slowJobMessage(j *Job, now time.Time) string {
	typ := j.Type
	if j.effectiveStop() {
		typ = api.JobStop
	} else if typ == api.JobRestart || typ == api.JobTryRestart {
		typ = api.JobStart
	}
	limit := "no limit"
	if t, ok := j.Unit.behaviour.(timeouts); ok {
		if d := t.jobTimeout(typ); d > 0 && d != unitfile.Infinity {
			limit = unitfile.FormatDuration(d)
		}
	}
	if d := j.Unit.jobTimeout(); d > 0 {
		limit = unitfile.FormatDuration(d)
	}
	elapsed := now.Sub(j.begun).Truncate(time.Second)
	return fmt.Sprintf("A %s job is running for %s (%s / %s)", typ, j.Unit.describe(), unitfile.FormatDuration(elapsed), limit)
}
