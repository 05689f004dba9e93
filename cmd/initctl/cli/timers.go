package cli

import (
	"fmt"
	"time"

	"vigil/units/api"
	"vigil/units/calendar"
)

func timersCommand() *command {
	return &command{Name: "list-timers", Args: "[PATTERN...]", Summary: "List timers with their next and last elapse, as systemctl list-timers does",
		Flags: []flagSpec{{Long: "all", Short: 'a', Help: "also show inactive timers"}}, MaxArgs: -1, Run: (*env).runListTimers}
}

func (e *env) runListTimers(p *parsed) int {
	args := api.ListArgs{Types: []string{"timer"}, Patterns: p.args, All: p.has("all")}
	var units []api.UnitSummary
	if err := e.call(api.MethodList, args, &units, nil); err != nil {
		return e.fail("list timers", err)
	}
	if e.json {
		return e.printJSON(nonNil(units))
	}
	now := time.Now()
	t := &table{header: []string{"NEXT", "LEFT", "LAST", "PASSED", "UNIT", "ACTIVATES"}}
	for _, u := range units {
		next, left := timerCell(u.Extra["next"], now)
		last, passed := timerCell(u.Extra["last"], now)
		t.add("", next, left, last, passed, u.Name, u.Extra["activates"])
	}
	e.renderTable(t)
	if e.legend {
		fmt.Fprintf(e.stdout, "\n%d timers listed.\n", len(units))
		if !args.All {
			fmt.Fprintln(e.stdout, "Pass --all to see loaded but inactive timers, too.")
		}
	}
	return exitOK
}

// timerCell renders an RFC 3339 time as systemd does, with how far it is.
func timerCell(value string, now time.Time) (string, string) {
	at, err := time.Parse(time.RFC3339, value)
	if value == "" || err != nil {
		return "n/a", "n/a"
	}
	return calendar.FormatTimestamp(at, time.Local), calendar.FormatRelative(at, now)
}
