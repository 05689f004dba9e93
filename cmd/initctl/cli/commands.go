package cli

import (
	"fmt"
	"strings"

	"vigil/units/api"
)

// commands is initctl's verb table.
func commands() []*command {
	jobFlags := []flagSpec{
		{Long: "no-block", Help: "do not wait for the jobs to finish"},
		{Long: "job-mode", Value: "MODE", Help: "replace (default), fail, isolate, ignore-dependencies, ignore-requirements, replace-irreversibly"},
	}
	job := func(name, jobType, summary string) *command {
		return &command{Name: name, UnitSuffix: ".service", Args: "UNIT...", Summary: summary, Flags: jobFlags, MinArgs: 1, MaxArgs: -1,
			Run: func(e *env, p *parsed) int { return e.runJob(p, name, jobType) }}
	}
	return append([]*command{
		{Name: "list", Aliases: []string{"list-units"}, Args: "[PATTERN...]", Summary: "List units the manager has loaded",
			Flags: []flagSpec{
				{Long: "type", Short: 't', Value: "TYPE", Repeat: true, Help: "only units of these types (service,socket,...)"},
				{Long: "state", Value: "STATE", Repeat: true, Help: "only units in these states (active,failed,running,...)"},
				{Long: "failed", Help: "same as --state=failed"},
				{Long: "all", Short: 'a', Help: "also show inactive units"},
			}, MaxArgs: -1, Run: (*env).runList},
		{Name: "status", UnitSuffix: ".service", Args: "[UNIT...]", Summary: "Show runtime status of units",
			Flags:   []flagSpec{{Long: "lines", Short: 'n', Value: "N", Help: "number of log lines to show (default 10)"}},
			MaxArgs: -1, Run: (*env).runStatus},
		{Name: "show", UnitSuffix: ".service", Args: "[UNIT...]", Summary: "Show properties of units (or of the manager) as KEY=VALUE",
			Flags: []flagSpec{
				{Long: "property", Short: 'p', Value: "NAME", Repeat: true, Help: "only these properties (comma-separated or repeated)"},
				{Long: "value", Help: "print only the values"},
				{Long: "all", Short: 'a', Help: "also show empty properties"},
			}, MaxArgs: -1, Run: (*env).runShow},
		{Name: "cat", UnitSuffix: ".service", Args: "UNIT...", Summary: "Show unit files and drop-ins as they are on disk", MinArgs: 1, MaxArgs: -1, Run: (*env).runCat},
		job("start", api.JobStart, "Start (activate) units"),
		job("stop", api.JobStop, "Stop (deactivate) units"),
		job("restart", api.JobRestart, "Restart units"),
		job("reload", api.JobReload, "Reload units' configuration"),
		job("try-restart", api.JobTryRestart, "Restart units that are running"),
		job("reload-or-restart", api.JobReloadOrRestart, "Reload units if they support it, else restart them"),
		{Name: "isolate", UnitSuffix: ".target", Args: "UNIT", Summary: "Start a unit and stop every unit it does not pull in", Flags: jobFlags[:1], MinArgs: 1, MaxArgs: 1,
			Run: func(e *env, p *parsed) int { return e.runJob(p, "isolate", api.JobStart) }},
		{Name: "kill", UnitSuffix: ".service", Args: "UNIT...", Summary: "Send a signal to units' processes",
			Flags: []flagSpec{
				{Long: "signal", Short: 's', Value: "SIGNAL", Help: "signal to send (default SIGTERM)"},
				{Long: "kill-whom", Value: "WHOM", Help: "main, control or all (default)"},
				{Long: "kill-who", Value: "WHOM", Help: "old spelling of --kill-whom"},
			}, MinArgs: 1, MaxArgs: -1, Run: (*env).runKill},
		{Name: "is-active", UnitSuffix: ".service", Args: "UNIT...", Summary: "Print units' active states; exit 0 if at least one is active, else 3", MinArgs: 1, MaxArgs: -1,
			Run: func(e *env, p *parsed) int { return e.runIs(p, api.MethodIsActive) }},
		{Name: "is-failed", UnitSuffix: ".service", Args: "UNIT...", Summary: "Print units' active states; exit 0 if at least one has failed, else 1", MinArgs: 1, MaxArgs: -1,
			Run: func(e *env, p *parsed) int { return e.runIs(p, api.MethodIsFailed) }},
		{Name: "is-enabled", UnitSuffix: ".service", Args: "UNIT...", Summary: "Print units' enablement; exit 0 if at least one is enabled, else 1", MinArgs: 1, MaxArgs: -1,
			Run: func(e *env, p *parsed) int { return e.runIs(p, api.MethodIsEnabled) }},
		{Name: "reset-failed", UnitSuffix: ".service", Args: "[UNIT...]", Summary: "Forget failed states (of all units when none is named)", MaxArgs: -1, Run: (*env).runResetFailed},
		{Name: "enable", UnitSuffix: ".service", Args: "UNIT...", Summary: "Enable units: create the links their [install] section asks for",
			Flags:   []flagSpec{{Long: "now", Help: "also start the units"}, {Long: "runtime", Help: "only until the next reboot (under /run)"}},
			MinArgs: 1, MaxArgs: -1, Run: func(e *env, p *parsed) int { return e.runEnable(p, api.MethodEnable) }},
		{Name: "disable", UnitSuffix: ".service", Args: "UNIT...", Summary: "Disable units: remove their links",
			Flags:   []flagSpec{{Long: "now", Help: "also stop the units"}, {Long: "runtime", Help: "only the links under /run"}},
			MinArgs: 1, MaxArgs: -1, Run: func(e *env, p *parsed) int { return e.runEnable(p, api.MethodDisable) }},
		{Name: "check", Args: "FILE...", Summary: "Check unit files for errors without running anything (works offline)", MinArgs: 1, MaxArgs: -1, Run: (*env).runCheck},
		{Name: "daemon-reload", Summary: "Re-read unit files; running units keep running", MaxArgs: 0, Run: (*env).runDaemonReload},
		{Name: "list-jobs", Args: "", Summary: "List jobs that are queued or running", MaxArgs: 0, Run: (*env).runListJobs},
		{Name: "cancel", Args: "[JOB...]", Summary: "Cancel jobs by ID (all jobs when none is named)", MaxArgs: -1, Run: (*env).runCancel},
		{Name: "logs", UnitSuffix: ".service", Args: "[UNIT]", Summary: "Show units' captured output",
			Flags: []flagSpec{
				{Long: "lines", Short: 'n', Value: "N", Help: "show the last N lines (default: 10 with -f; else all of a unit's, the last 1000 of all units)"},
				{Long: "follow", Short: 'f', Help: "keep printing new lines"},
				{Long: "since", Short: 'S', Value: "TIME", Help: `only lines since TIME: RFC 3339, "2024-01-02 15:04", "10min ago", "today", "yesterday"`},
				{Long: "unit", Short: 'u', Value: "UNIT", Help: "the unit (same as the argument)"},
			}, MaxArgs: 1, Run: (*env).runLogs},
		{Name: "poweroff", Summary: "Stop everything and power the machine off", Flags: shutdownFlags(), MaxArgs: 0,
			Run: func(e *env, p *parsed) int { return e.runShutdown("poweroff") }},
		{Name: "reboot", Summary: "Stop everything and reboot", Flags: shutdownFlags(), MaxArgs: 0,
			Run: func(e *env, p *parsed) int { return e.runShutdown("reboot") }},
		{Name: "halt", Summary: "Stop everything and halt", Flags: shutdownFlags(), MaxArgs: 0,
			Run: func(e *env, p *parsed) int { return e.runShutdown("halt") }},
		{Name: "emit", Args: "NAME [KEY=VALUE...]", Summary: "Inject a custom event into the observer", MinArgs: 1, MaxArgs: -1, Run: (*env).runEmit},
		{Name: "observe", Aliases: []string{"monitor"}, Args: "[FILTER...]", Summary: "Print live events, as udevadm monitor does (e.g. source=uevent SUBSYSTEM=block)", MaxArgs: -1, Run: (*env).runObserve},
		{Name: "observers", Summary: "List observers and sources with their event and drop counts", MaxArgs: 0, Run: (*env).runObservers},
		topCommand(), setPropertyCommand(), timersCommand(),
		auditCommand(),
		{Name: "version", Aliases: []string{"ping"}, Summary: "Show the manager's version", MaxArgs: 0, Run: (*env).runVersion},
	}, calendarCommands()...)
}

// shutdownFlags are the sysvinit-style options poweroff/reboot/halt
// accept; Vigil always shuts down cleanly, so they change nothing.
func shutdownFlags() []flagSpec {
	return []flagSpec{
		{Long: "force", Short: 'f', Help: "accepted for compatibility"},
		{Long: "no-wall", Help: "accepted for compatibility"},
		{Long: "poweroff", Short: 'p', Help: "accepted for compatibility"},
	}
}

func (e *env) runList(p *parsed) int {
	args := api.ListArgs{Types: p.list("type"), States: p.list("state"), Patterns: p.args, All: p.has("all")}
	if p.has("failed") {
		args.States = append(args.States, "failed")
	}
	var units []api.UnitSummary
	if err := e.call(api.MethodList, args, &units, nil); err != nil {
		return e.fail("list units", err)
	}
	if e.json {
		return e.printJSON(nonNil(units))
	}
	e.printUnitTable(units, args.All)
	return exitOK
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (e *env) printUnitTable(units []api.UnitSummary, all bool) {
	withJob := false
	for _, u := range units {
		if u.JobType != "" {
			withJob = true
		}
	}
	t := &table{header: []string{"UNIT", "LOAD", "ACTIVE", "SUB"}}
	if withJob {
		t.header = append(t.header, "JOB")
	}
	// A listing of sockets shows what each one listens on and activates,
	// with its connection counts.
	sockets := len(units) > 0
	for _, u := range units {
		if u.Type != "socket" {
			sockets = false
		}
	}
	if sockets {
		t.header = append(t.header, "LISTEN", "ACTIVATES", "CONNECTIONS", "ACCEPTED")
	}
	t.header = append(t.header, "DESCRIPTION")
	for _, u := range units {
		mark := ""
		if u.Active == "failed" || (u.Load != "loaded" && u.Load != "") {
			mark = e.color(colorRed, "●")
		}
		// Cells stay plain: alignment is measured on visible text, so only
		// the gutter mark carries color.
		row := []string{u.Name, u.Load, u.Active, u.Sub}
		if withJob {
			row = append(row, u.JobType)
		}
		if sockets {
			row = append(row, u.Extra["listen"], u.Extra["activates"], u.Extra["connections"], u.Extra["accepted"])
		}
		t.add(mark, append(row, u.Description)...)
	}
	e.renderTable(t)
	if e.legend {
		fmt.Fprintf(e.stdout, "\nLOAD   = Whether the unit's file was loaded without errors.\nACTIVE = The high-level activation state.\nSUB    = The low-level state; its values depend on the unit type.\n")
		if withJob {
			fmt.Fprintf(e.stdout, "JOB    = A job queued or running for the unit.\n")
		}
		fmt.Fprintf(e.stdout, "\n%d loaded units listed.", len(units))
		if !all {
			fmt.Fprintf(e.stdout, " Pass --all to see loaded but inactive units, too.")
		}
		fmt.Fprintln(e.stdout)
	}
}

func stateColor(state string) string {
	switch state {
	case "failed", "not-found", "bad-setting", "error":
		return colorRed
	case "activating", "deactivating", "reloading":
		return colorYellow
	case "active":
		return colorGreen
	}
	return ""
}

func (e *env) runShow(p *parsed) int {
	units := p.args
	if len(units) == 0 {
		units = []string{""} // the manager itself
	}
	var all [][]api.Property
	status := exitOK
	for i, u := range units {
		var props []api.Property
		if err := e.call(api.MethodShow, api.ShowArgs{Unit: u, Properties: p.list("property")}, &props, nil); err != nil {
			status = e.fail("show "+orManager(u), err)
			continue
		}
		if e.json {
			all = append(all, nonNil(props))
			continue
		}
		if i > 0 && !p.has("value") {
			fmt.Fprintln(e.stdout)
		}
		for _, pr := range props {
			if pr.Value == "" && !p.has("all") && len(p.list("property")) == 0 {
				continue
			}
			if p.has("value") {
				fmt.Fprintln(e.stdout, pr.Value)
			} else {
				fmt.Fprintf(e.stdout, "%s=%s\n", pr.Name, pr.Value)
			}
		}
	}
	if e.json {
		if len(p.args) <= 1 && len(all) == 1 {
			e.printJSON(showObject(all[0]))
		} else {
			objs := make([]map[string]string, len(all))
			for i, props := range all {
				objs[i] = showObject(props)
			}
			e.printJSON(objs)
		}
	}
	return status
}

func showObject(props []api.Property) map[string]string {
	m := make(map[string]string, len(props))
	for _, p := range props {
		m[p.Name] = p.Value
	}
	return m
}

func orManager(unit string) string {
	if unit == "" {
		return "the manager"
	}
	return unit
}

func (e *env) runCat(p *parsed) int {
	status := exitOK
	var results []api.CatResult
	for i, u := range p.args {
		var res api.CatResult
		if err := e.call(api.MethodCat, api.UnitArgs{Unit: u}, &res, nil); err != nil {
			if notFound(err) {
				fmt.Fprintf(e.stderr, "No files found for %s.\n", u)
				status = exitFailure
				continue
			}
			status = e.fail("cat "+u, err)
			continue
		}
		if e.json {
			results = append(results, res)
			continue
		}
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		for j, f := range res.Files {
			if j > 0 {
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintln(e.stdout, e.color(colorBold, "# "+f.Path))
			fmt.Fprint(e.stdout, f.Content)
			if f.Content != "" && !strings.HasSuffix(f.Content, "\n") {
				fmt.Fprintln(e.stdout)
			}
		}
	}
	if e.json {
		e.printJSON(nonNil(results))
	}
	return status
}

// isResult is one line of is-active & co in JSON.
type isResult struct {
	Unit  string `json:"unit"`
	State string `json:"state"`
}

func (e *env) runIs(p *parsed, method string) int {
	var states []string
	if err := e.call(method, api.UnitsArgs{Units: p.args}, &states, nil); err != nil {
		code := e.fail(method, err)
		if code == exitFailure && method == api.MethodIsActive {
			code = exitNotRunning
		}
		return code
	}
	if len(states) != len(p.args) {
		fmt.Fprintf(e.stderr, "%s: the manager answered %d states for %d units\n", method, len(states), len(p.args))
		return exitFailure
	}
	if e.json {
		out := make([]isResult, len(states))
		for i := range states {
			out[i] = isResult{Unit: p.args[i], State: states[i]}
		}
		e.printJSON(out)
	} else if !e.quiet {
		for _, s := range states {
			fmt.Fprintln(e.stdout, s)
		}
	}
	return isExit(method, states)
}

// isExit is systemctl's exit status for is-active, is-failed, is-enabled:
// 0 when at least one unit is in the asked-for state.
func isExit(method string, states []string) int {
	for _, s := range states {
		switch method {
		case api.MethodIsActive:
			if s == "active" || s == "reloading" || s == "refreshing" {
				return exitOK
			}
		case api.MethodIsFailed:
			if s == "failed" {
				return exitOK
			}
		case api.MethodIsEnabled:
			switch s {
			case "enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient":
				return exitOK
			}
		}
	}
	if method == api.MethodIsActive {
		return exitNotRunning
	}
	if method == api.MethodIsEnabled {
		for _, s := range states {
			if s == "not-found" {
				return exitNoSuchUnit
			}
		}
	}
	return exitFailure
}

func (e *env) runResetFailed(p *parsed) int {
	if err := e.call(api.MethodResetFailed, api.UnitsArgs{Units: p.args}, nil, nil); err != nil {
		return e.failNotFound("reset failed state", err, exitFailure)
	}
	return exitOK
}

func (e *env) runEnable(p *parsed, method string) int {
	var ch api.Changes
	if err := e.call(method, api.UnitsArgs{Units: p.args, Runtime: p.has("runtime")}, &ch, nil); err != nil {
		return e.failNotFound(method+" "+strings.Join(p.args, " "), err, exitFailure)
	}
	if e.json {
		e.printJSON(ch)
	} else if !e.quiet {
		printChanges(e, ch)
	}
	if p.has("now") {
		jobType := api.JobStart
		if method == api.MethodDisable {
			jobType = api.JobStop
		}
		return e.runJob(p, jobType, jobType)
	}
	return exitOK
}

func printChanges(e *env, ch api.Changes) {
	for _, c := range ch.Changes {
		switch c.Type {
		case "symlink":
			fmt.Fprintf(e.stdout, "Created symlink %s → %s.\n", c.Path, c.Destination)
		case "unlink":
			fmt.Fprintf(e.stdout, "Removed %q.\n", c.Path)
		default:
			fmt.Fprintf(e.stdout, "%s %s %s\n", c.Type, c.Path, c.Destination)
		}
	}
}

func (e *env) runDaemonReload(p *parsed) int {
	var res api.ReloadResult
	if err := e.call(api.MethodDaemonReload, nil, &res, nil); err != nil {
		return e.fail("reload the manager", err)
	}
	if e.json {
		return e.printJSON(res)
	}
	if !e.quiet {
		for _, what := range []struct {
			verb  string
			units []string
		}{{"Added", res.Added}, {"Removed", res.Removed}, {"Changed", res.Changed}} {
			if len(what.units) > 0 && e.tty {
				fmt.Fprintf(e.stdout, "%s: %s\n", what.verb, strings.Join(what.units, " "))
			}
		}
	}
	for _, pr := range res.Problems {
		fmt.Fprintln(e.stderr, pr)
	}
	return exitOK
}

func (e *env) runListJobs(p *parsed) int {
	var jobs []api.JobInfo
	if err := e.call(api.MethodListJobs, nil, &jobs, nil); err != nil {
		return e.fail("list jobs", err)
	}
	if e.json {
		return e.printJSON(nonNil(jobs))
	}
	if len(jobs) == 0 {
		if e.legend {
			fmt.Fprintln(e.stdout, "No jobs running.")
		}
		return exitOK
	}
	t := &table{header: []string{"JOB", "UNIT", "TYPE", "STATE"}}
	for _, j := range jobs {
		t.add("", fmt.Sprint(j.ID), j.Unit, j.Type, j.State)
	}
	e.renderTable(t)
	if e.legend {
		fmt.Fprintf(e.stdout, "\n%d jobs listed.\n", len(jobs))
	}
	return exitOK
}

func (e *env) runKill(p *parsed) int {
	sig, err := parseSignal(p.str("signal", "SIGTERM"))
	if err != nil {
		fmt.Fprintf(e.stderr, "%s kill: %v\n", e.program, err)
		return exitUsage
	}
	whom := p.str("kill-whom", p.str("kill-who", ""))
	switch whom {
	case "", "all", "main", "control":
	default:
		fmt.Fprintf(e.stderr, "%s kill: --kill-whom must be main, control or all, not %q\n", e.program, whom)
		return exitUsage
	}
	status := exitOK
	for _, u := range p.args {
		if err := e.call(api.MethodKill, api.KillArgs{Unit: u, Signal: sig, Whom: whom}, nil, nil); err != nil {
			status = e.failNotFound("kill "+u, err, exitFailure)
		}
	}
	return status
}

func (e *env) runShutdown(action string) int {
	if err := e.call(api.MethodShutdown, api.ShutdownArgs{Action: action}, nil, nil); err != nil {
		return e.fail(action, err)
	}
	return exitOK
}

func (e *env) runVersion(p *parsed) int {
	var v api.Version
	if err := e.call(api.MethodPing, nil, &v, nil); err != nil {
		return e.fail("reach the manager", err)
	}
	if e.json {
		return e.printJSON(v)
	}
	role := "manager"
	if v.PID1 {
		role = "init (PID 1)"
	}
	fmt.Fprintf(e.stdout, "vigil %s, %s, pid %d\n", v.Version, role, v.PID)
	return exitOK
}
