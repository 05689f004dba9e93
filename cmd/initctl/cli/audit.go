package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"vigil/observer/audit"
)

// auditCommand is `initctl audit [status|reload]`: the audit log (through
// the control socket, so only root reads it and others are refused by the
// manager), the auditor's status, or a reload of audit.toml.
func auditCommand() *command {
	return &command{Name: "audit", Args: "[status|reload]", Summary: "Show the audit log (default), the auditor's status, or reload /etc/vigil/audit.toml",
		Flags: []flagSpec{
			{Long: "follow", Short: 'f', Help: "keep printing new records"},
			{Long: "unit", Short: 'u', Value: "UNIT", Help: "only records of this unit"},
			{Long: "verdict", Value: "VERDICT", Help: "only records with this verdict (allow or deny)"},
			{Long: "rule", Value: "NAME", Help: "only records decided by this rule"},
			{Long: "lines", Short: 'n', Value: "N", Help: "show the last N records (default 50; 0: all)"},
		}, MaxArgs: 1, Run: (*env).runAudit}
}

func (e *env) runAudit(p *parsed) int {
	sub := ""
	if len(p.args) == 1 {
		sub = p.args[0]
	}
	switch sub {
	case "":
		return e.runAuditLog(p)
	case "status":
		return e.runAuditStatus(audit.MethodStatus, "show the audit status")
	case "reload":
		return e.runAuditStatus(audit.MethodReload, "reload the audit policy")
	}
	fmt.Fprintf(e.stderr, "%s audit: unknown subcommand %q (status, reload, or none for the log)\n", e.program, sub)
	return exitUsage
}

func (e *env) runAuditLog(p *parsed) int {
	n, err := p.int("lines", 0)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s audit: %v\n", e.program, err)
		return exitUsage
	}
	if !p.has("lines") {
		n = 0 // the manager's default
	} else if n == 0 {
		n = -1 // all
	}
	verdict := p.str("verdict", "")
	if verdict != "" && verdict != "allow" && verdict != "deny" {
		fmt.Fprintf(e.stderr, "%s audit: --verdict %q: expected allow or deny\n", e.program, verdict)
		return exitUsage
	}
	unit := p.str("unit", "")
	if unit != "" {
		unit = mangleUnit(unit, ".service")
	}
	args := audit.LogArgs{Lines: n, Follow: p.has("follow"), Filter: audit.RecordFilter{Unit: unit, Verdict: verdict, Rule: p.str("rule", "")}}
	print := func(r audit.Record) {
		if e.json {
			e.printJSONLine(r)
			return
		}
		fmt.Fprintln(e.stdout, formatAuditRecord(r))
	}
	var backlog []audit.Record
	err = e.call(audit.MethodLog, args, &backlog, func(raw json.RawMessage) {
		var r audit.Record
		if json.Unmarshal(raw, &r) == nil {
			print(r)
		}
	})
	if err != nil {
		code := e.fail("show the audit log", err)
		if code == exitInterrupted && args.Follow {
			return exitOK
		}
		return code
	}
	for _, r := range backlog {
		print(r)
	}
	return exitOK
}

// formatAuditRecord is one record for people: the time, the verdict and
// who did what, then the rest as the log has it.
func formatAuditRecord(r audit.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s %s", r.Time.Local().Format("Jan 02 15:04:05.000"), r.Verdict, r.Access, r.Path)
	fmt.Fprintf(&b, " pid=%d uid=%s", r.PID, r.UID)
	if r.Exe != "" {
		fmt.Fprintf(&b, " exe=%s", r.Exe)
	}
	if r.Unit != "" {
		fmt.Fprintf(&b, " unit=%s", r.Unit)
	}
	fmt.Fprintf(&b, " rule=%s", r.Rule)
	if r.Logged != "" {
		fmt.Fprintf(&b, " logged=%s", r.Logged)
	}
	if r.Mode == string(audit.Permissive) {
		b.WriteString(" (permissive)")
	}
	return b.String()
}

func (e *env) runAuditStatus(method, what string) int {
	var st audit.Status
	if err := e.call(method, nil, &st, nil); err != nil {
		return e.fail(what, err)
	}
	if e.json {
		return e.printJSON(st)
	}
	if method == audit.MethodReload && e.quiet {
		return exitOK
	}
	if !st.Loaded {
		fmt.Fprintf(e.stdout, "Policy: %s (not loaded)\n", st.Config)
	} else {
		fmt.Fprintf(e.stdout, "Policy: %s (loaded %s)\n", st.Config, st.LoadedAt.Local().Format(time.DateTime))
		fmt.Fprintf(e.stdout, "  Mode: %s, default %s, decision timeout %s then %s\n", st.Mode, st.Default, st.DecisionTimeout, st.TimeoutVerdict)
		fmt.Fprintf(e.stdout, "   Log: %s\n", st.Log)
	}
	switch {
	case st.Unavailable != "":
		fmt.Fprintf(e.stdout, "Enforcing: no (fanotify unavailable: %s)\n", st.Unavailable)
	case st.Loaded:
		fmt.Fprintf(e.stdout, "Enforcing: %v\n", st.Enforcing)
	}
	if st.LastError != "" {
		fmt.Fprintf(e.stdout, "Last error: %s\n", st.LastError)
	}
	c := st.Counters
	fmt.Fprintf(e.stdout, "Decisions: %d (allowed %d, denied %d, would deny %d; inline %d, late %d, busy %d)\n",
		c.Decisions, c.Allowed, c.Denied, c.WouldDeny, c.Inline, c.Late, c.Busy)
	fmt.Fprintf(e.stdout, "Log: %d written, %d dropped, %d rotations; reloads %d, failed %d\n", c.Logged, c.LogDropped, c.Rotations, c.Reloads, c.ReloadFail)
	if len(st.Rules) > 0 {
		fmt.Fprintln(e.stdout)
		t := &table{header: []string{"RULE", "LINE", "ACCESS", "ACTION", "HITS"}}
		for _, r := range st.Rules {
			t.add("", r.Name, fmt.Sprint(r.Line), r.Access, r.Action, fmt.Sprint(r.Hits))
		}
		e.renderTable(t)
	}
	if len(st.Marks) > 0 {
		fmt.Fprintln(e.stdout)
		t := &table{header: []string{"MARK", "SCOPE", "ACCESS", "ERROR"}}
		for _, m := range st.Marks {
			scope := "path"
			if m.Tree {
				scope = "tree"
			}
			t.add("", m.Path, scope, m.Access, m.Error)
		}
		e.renderTable(t)
	}
	return exitOK
}
