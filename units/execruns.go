package units

import (
	"crypto/rand"
	"time"

	"vigil/observer/process"
	"vigil/units/unitfile"
)

// ExecRun is one configured command of a unit with what its last run did,
// as systemd's ExecStart= (and siblings) properties show it.
type ExecRun struct {
	Path          string
	Argv          []string
	IgnoreFailure bool
	// Start and Exit are zero until the command ran and ended.
	Start, Exit time.Time
	PID         int
	// Code is the si_code of the exit (1 exited, 2 killed, 3 dumped; 0
	// while running or never run); Status the exit status or signal.
	Code, Status int32
}

// ServiceRuntime is what a service's last activation did, beyond its
// state: the D-Bus Service properties read it.
type ServiceRuntime struct {
	// InvocationID is 16 random bytes chosen when the unit last began to
	// start; nil before the first start.
	InvocationID []byte
	// Commands maps ExecStartPre, ExecStart, ExecStartPost, ExecReload,
	// ExecStop, ExecStopPost (and ExecCondition) to the configured
	// commands with their last runs.
	Commands map[string][]ExecRun
	// The main process: when it started and exited, its PID and exit.
	ExecMainStart, ExecMainExit time.Time
	ExecMainPID                 int
	ExecMainCode                int32
	ExecMainStatus              int32
	ControlPID                  int
	// The configured environment, working directory, user and group.
	Environment                   []string
	WorkingDirectory, User, Group string
}

// unitRuns is what execruns.go keeps per unit.
type unitRuns struct {
	invocation []byte
	// runs by command list, in the order they ran; byPID finds a running
	// one when it exits.
	runs  map[string][]*ExecRun
	byPID map[int]*ExecRun
	main  *ExecRun
}

// execKind names the command list a service's process came from.
func execKind(phase string, main bool) string {
	if main {
		return "ExecStart"
	}
	switch phase {
	case svcStartPre:
		return "ExecStartPre"
	case svcStart:
		return "ExecStart"
	case svcStartPost:
		return "ExecStartPost"
	case svcReload:
		return "ExecReload"
	case svcStop:
		return "ExecStop"
	case svcStopPost:
		return "ExecStopPost"
	}
	return "ExecStart"
}

func (m *Manager) unitRuns(u *Unit) *unitRuns {
	if m.runs == nil {
		m.runs = map[*Unit]*unitRuns{}
	}
	r := m.runs[u]
	if r == nil {
		r = &unitRuns{runs: map[string][]*ExecRun{}, byPID: map[int]*ExecRun{}}
		m.runs[u] = r
	}
	return r
}

// noteActivation starts a new invocation of u: a fresh invocation ID and
// no runs yet. Called when a start begins.
func (m *Manager) noteActivation(u *Unit) {
	r := m.unitRuns(u)
	id := make([]byte, 16)
	if _, err := rand.Read(id); err == nil {
		// Version 4 UUID bits, as systemd's sd_id128_randomize sets them.
		id[6] = id[6]&0x0f | 0x40
		id[8] = id[8]&0x3f | 0x80
		r.invocation = id
	}
	r.runs = map[string][]*ExecRun{}
	r.byPID = map[int]*ExecRun{}
	r.main = nil
}

// noteExecStart records that cmd of list kind started as pid.
func (m *Manager) noteExecStart(u *Unit, kind string, cmd unitfile.Command, pid int, main bool) {
	r := m.unitRuns(u)
	if (kind == "ExecStop" || kind == "ExecStopPost" || kind == "ExecReload") && containsRun(r.runs[kind], cmd) {
		// The list runs again (a second stop or reload in one
		// activation): its record starts over.
		r.runs[kind] = nil
	}
	run := &ExecRun{Path: cmd.Path, Argv: append([]string(nil), cmd.Argv...), IgnoreFailure: cmd.IgnoreFailure,
		Start: time.Now(), PID: pid}
	r.runs[kind] = append(r.runs[kind], run)
	r.byPID[pid] = run
	if main {
		r.main = run
	}
}

func containsRun(runs []*ExecRun, cmd unitfile.Command) bool {
	for _, r := range runs {
		if r.Path == cmd.Path && equalStrings(r.Argv, cmd.Argv) {
			return true
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// noteExecExit records the exit of a process noteExecStart saw.
func (m *Manager) noteExecExit(u *Unit, pid int, ex process.Exit) {
	r := m.runs[u]
	if r == nil {
		return
	}
	run := r.byPID[pid]
	if run == nil {
		return
	}
	delete(r.byPID, pid)
	run.Exit = time.Now()
	run.Code, run.Status = exitCodeStatus(ex)
}

// exitCodeStatus gives si_code and status of an exit.
func exitCodeStatus(ex process.Exit) (int32, int32) {
	switch {
	case ex.Signal != 0 && ex.CoreDumped:
		return 3, int32(ex.Signal) // CLD_DUMPED
	case ex.Signal != 0:
		return 2, int32(ex.Signal) // CLD_KILLED
	}
	return 1, int32(ex.Code) // CLD_EXITED
}

// InvocationID is the unit's current invocation ID (nil before a start).
func (m *Manager) InvocationID(name string) []byte {
	u := m.units[name]
	if u == nil || m.runs[u] == nil {
		return nil
	}
	return m.runs[u].invocation
}

// ServiceRuntime describes a service's last activation; false if name is
// not a loaded service.
func (m *Manager) ServiceRuntime(name string) (ServiceRuntime, bool) {
	u := m.units[name]
	if u == nil {
		return ServiceRuntime{}, false
	}
	s, ok := u.behaviour.(*service)
	if !ok {
		return ServiceRuntime{}, false
	}
	rt := ServiceRuntime{ExecMainStart: s.execStart, ExecMainExit: s.execExit,
		ControlPID: s.controlPID, Environment: append([]string(nil), s.cfg.Environment...),
		User: s.cfg.User, Group: s.cfg.Group}
	switch wd := s.cfg.WorkingDirectory; {
	case wd.Home:
		rt.WorkingDirectory = "~"
	case wd.Path != "" && wd.Optional:
		rt.WorkingDirectory = "!" + wd.Path
	default:
		rt.WorkingDirectory = wd.Path
	}
	r := m.runs[u]
	if r != nil {
		rt.InvocationID = r.invocation
		if r.main != nil {
			rt.ExecMainPID = r.main.PID
			rt.ExecMainCode, rt.ExecMainStatus = r.main.Code, r.main.Status
			if rt.ExecMainStart.IsZero() {
				rt.ExecMainStart = r.main.Start
			}
			if rt.ExecMainExit.IsZero() {
				rt.ExecMainExit = r.main.Exit
			}
		}
	}
	if s.mainPID != 0 {
		rt.ExecMainPID = s.mainPID
	}
	rt.Commands = commandRuns(r, map[string]unitfile.Commands{
		"ExecCondition": s.cfg.ExecCondition, "ExecStartPre": s.cfg.ExecStartPre, "ExecStart": s.cfg.ExecStart,
		"ExecStartPost": s.cfg.ExecStartPost, "ExecReload": s.cfg.ExecReload, "ExecStop": s.cfg.ExecStop,
		"ExecStopPost": s.cfg.ExecStopPost,
	})
	return rt, true
}

// SocketCommands gives a socket unit's configured commands (ExecStartPre,
// ExecStartPost, ExecStopPre, ExecStopPost) with their last runs; false
// if name is not a loaded socket.
func (m *Manager) SocketCommands(name string) (map[string][]ExecRun, bool) {
	u := m.units[name]
	if u == nil {
		return nil, false
	}
	k, ok := u.behaviour.(*socketUnit)
	if !ok {
		return nil, false
	}
	return commandRuns(m.runs[u], map[string]unitfile.Commands{
		"ExecStartPre": k.cfg.ExecStartPre, "ExecStartPost": k.cfg.ExecStartPost,
		"ExecStopPre": k.cfg.ExecStopPre, "ExecStopPost": k.cfg.ExecStopPost,
	}), true
}

// commandRuns pairs each configured command list with what r recorded.
func commandRuns(r *unitRuns, lists map[string]unitfile.Commands) map[string][]ExecRun {
	commands := map[string][]ExecRun{}
	for kind, cmds := range lists {
		var ran []*ExecRun
		if r != nil {
			ran = r.runs[kind]
		}
		used := make([]bool, len(ran))
		out := make([]ExecRun, 0, len(cmds))
		for _, c := range cmds {
			er := ExecRun{Path: c.Path, Argv: c.Argv, IgnoreFailure: c.IgnoreFailure}
			// The configured command shows its own last run: the first
			// unclaimed run of the same command line.
			for i, x := range ran {
				if !used[i] && x.Path == c.Path && equalStrings(x.Argv, c.Argv) {
					used[i] = true
					er.Start, er.Exit, er.PID, er.Code, er.Status = x.Start, x.Exit, x.PID, x.Code, x.Status
					break
				}
			}
			out = append(out, er)
		}
		if len(out) > 0 {
			commands[kind] = out
		}
	}
	return commands
}

// forgetRuns drops a removed unit's records.
func (m *Manager) forgetRuns(u *Unit) { delete(m.runs, u) }
