package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"vigil/units/api"
)

func (e *env) runStatus(p *parsed) int {
	lines, err := p.int("lines", 10)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s status: %v\n", e.program, err)
		return exitUsage
	}
	units := p.args
	if len(units) == 0 {
		return e.runList(&parsed{values: map[string][]string{}, set: map[string]bool{}})
	}
	status := exitOK
	var all []api.UnitStatus
	for i, u := range units {
		var st api.UnitStatus
		if err := e.call(api.MethodStatus, api.UnitArgs{Unit: u, Lines: lines}, &st, nil); err != nil {
			code := e.fail("get status of "+u, err)
			if status == exitOK || code == exitNoSuchUnit {
				status = code
			}
			continue
		}
		if st.Load == "not-found" && !e.json {
			fmt.Fprintf(e.stderr, "Unit %s could not be found.\n", u)
			status = exitNoSuchUnit
			continue
		}
		if e.json {
			all = append(all, st)
		} else {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			e.formatStatus(e.stdout, &st, lines)
		}
		// systemctl status: 0 if active, 3 if not, 4 if unknown.
		if status == exitOK && st.Active != "active" && st.Active != "reloading" {
			status = exitNotRunning
			if st.Load == "not-found" {
				status = exitNoSuchUnit
			}
		}
	}
	if e.json {
		e.printJSON(nonNil(all))
	}
	return status
}

// formatStatus writes the systemctl-like status block of one unit.
func (e *env) formatStatus(w io.Writer, st *api.UnitStatus, maxLogs int) {
	now := e.now()
	bullet := "●"
	switch st.Active {
	case "failed":
		bullet = e.color(colorRed, "×")
	case "active", "reloading":
		bullet = e.color(colorGreen, bullet)
	case "activating", "deactivating":
		bullet = e.color(colorYellow, bullet)
	}
	head := bullet + " " + st.Name
	if st.Description != "" && st.Description != st.Name {
		head += " - " + st.Description
	}
	fmt.Fprintln(w, head)
	field := func(name, value string) {
		if value == "" {
			fmt.Fprintf(w, "%11s:\n", name)
			return
		}
		fmt.Fprintf(w, "%11s: %s\n", name, value)
	}
	cont := func(value string) {
		fmt.Fprintf(w, "%11s  %s\n", "", value)
	}

	// Loaded: loaded (/etc/vigil/units/foo.service; enabled)
	loaded := e.color(stateColor(st.Load), st.Load)
	var paren []string
	if st.Fragment != "" {
		paren = append(paren, st.Fragment)
	}
	if st.UnitFileState != "" {
		paren = append(paren, st.UnitFileState)
	}
	if st.LoadError != "" {
		paren = append(paren, "Reason: "+st.LoadError)
	}
	if len(paren) > 0 {
		loaded += " (" + strings.Join(paren, "; ") + ")"
	}
	field("Loaded", loaded)
	if len(st.DropIns) > 0 {
		byDir := map[string][]string{}
		var dirs []string
		for _, d := range st.DropIns {
			dir, file := filepath.Split(d)
			dir = strings.TrimSuffix(dir, "/")
			if _, ok := byDir[dir]; !ok {
				dirs = append(dirs, dir)
			}
			byDir[dir] = append(byDir[dir], file)
		}
		for i, dir := range dirs {
			if i == 0 {
				field("Drop-In", dir)
			} else {
				cont(dir)
			}
			cont("└─" + strings.Join(byDir[dir], ", "))
		}
	}

	// Active: active (running) since ...; 3s ago
	active := e.color(stateColor(st.Active), st.Active)
	sub := st.Sub
	if st.Active == "failed" && st.Result != "" && st.Result != "success" {
		sub = "Result: " + st.Result
	}
	if sub != "" {
		active += " (" + sub + ")"
	}
	if since := activeSince(st); !since.IsZero() {
		active += " since " + formatTimestamp(since) + "; " + formatAgo(now, since)
	}
	field("Active", active)
	for _, c := range st.Conditions {
		field("Condition", c)
	}
	for _, t := range st.Triggers {
		field("Triggers", t)
	}
	for _, t := range st.TriggeredBy {
		field("TriggeredBy", t)
	}
	if st.NeedReload {
		field("Warning", "the unit file changed on disk; run 'initctl daemon-reload'")
	}

	if st.MainPID > 0 {
		main := fmt.Sprint(st.MainPID)
		running := st.Active == "active" || st.Active == "activating" || st.Active == "reloading" || st.Active == "deactivating"
		if st.ExitStatus != "" && !running {
			code := "exited"
			if strings.HasPrefix(st.ExitStatus, "signal=") {
				code = "killed"
			}
			main += " (code=" + code + ", " + st.ExitStatus + ")"
		} else if cmd := mainCommand(st); cmd != "" {
			main += " (" + cmd + ")"
		}
		field("Main PID", main)
	} else if st.ExitStatus != "" {
		field("Process", st.ExitStatus)
	}
	if st.StatusText != "" {
		field("Status", fmt.Sprintf("%q", st.StatusText))
	}
	// Socket units: where they listen, as systemctl status shows it.
	for i, addr := range strings.Split(st.Extra["listen"], "\n") {
		if addr == "" {
			continue
		}
		if i == 0 {
			field("Listen", addr)
		} else {
			cont(addr)
		}
	}
	if st.Extra["accepted"] != "" {
		field("Accepted", st.Extra["accepted"]+"; Connected: "+st.Extra["connections"])
	}
	if st.NRestarts > 0 {
		field("Restarts", fmt.Sprint(st.NRestarts))
	}
	if st.TasksCurrent != nil {
		field("Tasks", fmt.Sprint(*st.TasksCurrent))
	}
	if st.MemoryCurrent != nil {
		mem := formatBytes(*st.MemoryCurrent)
		if st.MemoryPeak != nil {
			mem += " (peak: " + formatBytes(*st.MemoryPeak) + ")"
		}
		field("Memory", mem)
	}
	if st.CPUUsageNSec != nil {
		field("CPU", formatCPU(*st.CPUUsageNSec))
	}
	if st.ControlGroup != "" || len(st.Processes) > 0 {
		procs := st.Processes
		if st.ControlGroup != "" {
			field("CGroup", st.ControlGroup)
		} else {
			field("Processes", "")
		}
		for i, pr := range procs {
			branch := "├─"
			if i == len(procs)-1 {
				branch = "└─"
			}
			line := fmt.Sprintf("%s%d %s", branch, pr.PID, pr.Command)
			if e.tty && !e.full && e.width > 13 {
				line = ellipsize(line, e.width-13)
			}
			cont(line)
		}
	}
	if len(st.Logs) > 0 && maxLogs != 0 {
		logs := st.Logs
		if maxLogs > 0 && len(logs) > maxLogs {
			logs = logs[len(logs)-maxLogs:]
		}
		fmt.Fprintln(w)
		for _, l := range logs {
			fmt.Fprintln(w, formatLogLine(l))
		}
	}
}

// activeSince is the timestamp systemctl shows after the active state.
func activeSince(st *api.UnitStatus) time.Time {
	switch st.Active {
	case "active", "reloading":
		if !st.ActiveEnter.IsZero() {
			return st.ActiveEnter
		}
	case "inactive", "failed":
		if !st.InactiveEnter.IsZero() {
			return st.InactiveEnter
		}
	}
	return st.StateChange
}

func mainCommand(st *api.UnitStatus) string {
	for _, p := range st.Processes {
		if p.PID == st.MainPID {
			cmd, _, _ := strings.Cut(p.Command, " ")
			return filepath.Base(cmd)
		}
	}
	return ""
}

// formatLogLine renders a captured line as journalctl's short format does:
// "Jan 02 15:04:05 foo.service[123]: text".
func formatLogLine(l api.LogLine) string {
	who := l.Unit
	if who == "" {
		who = "vigil"
	}
	if l.PID > 0 {
		who += fmt.Sprintf("[%d]", l.PID)
	}
	return fmt.Sprintf("%s %s: %s", l.Time.Local().Format("Jan 02 15:04:05"), who, l.Text)
}
