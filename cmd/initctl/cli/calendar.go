package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"vigil/units/calendar"
)

// calendarCommands are the offline time-language verbs: they print what
// systemd-analyze calendar and timespan print and need no manager.
func calendarCommands() []*command {
	return []*command{
		{Name: "calendar", Args: "EXPR...", Summary: "Normalize calendar expressions and show their next elapses (works offline)",
			Flags: []flagSpec{
				{Long: "iterations", Value: "N", Help: "show the next N elapses (default 1)"},
				{Long: "base-time", Value: "TIME", Help: "search from TIME (@SECONDS, RFC 3339 or \"YYYY-MM-DD HH:MM:SS\") instead of now"},
			}, MinArgs: 1, MaxArgs: -1, Run: (*env).runCalendar},
		{Name: "timespan", Args: "SPAN...", Summary: "Show time spans in microseconds and in systemd's words (works offline)",
			MinArgs: 1, MaxArgs: -1, Run: (*env).runTimespan},
	}
}

func (e *env) runCalendar(p *parsed) int {
	iterations, err := p.int("iterations", 1)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s calendar: %v\n", e.program, err)
		return exitUsage
	}
	now := e.now()
	base := now
	if v := p.str("base-time", ""); v != "" {
		if base, err = parseBaseTime(v); err != nil {
			fmt.Fprintf(e.stderr, "%s calendar: --base-time: %v\n", e.program, err)
			return exitUsage
		}
	}
	status := exitOK
	for i, expr := range p.args {
		err := calendar.WriteCalendarReport(e.stdout, expr, calendar.ReportOptions{Iterations: iterations, Base: base, Now: now})
		var pe *calendar.ParseError
		switch {
		case errors.As(err, &pe):
			fmt.Fprintf(e.stderr, "Failed to parse calendar specification '%s': %s (at offset %d)\n", expr, pe.Reason, pe.Offset)
			status = exitFailure
		case err != nil:
			fmt.Fprintf(e.stderr, "Failed to %v\n", err)
			status = exitFailure
		}
		if i < len(p.args)-1 {
			fmt.Fprintln(e.stdout)
		}
	}
	return status
}

// runTimespan stops at the first span that does not parse, as
// systemd-analyze timespan does.
func (e *env) runTimespan(p *parsed) int {
	for i, span := range p.args {
		if err := calendar.WriteTimespanReport(e.stdout, span); err != nil {
			var te *calendar.TimespanError
			if errors.As(err, &te) {
				fmt.Fprintf(e.stderr, "Failed to parse time span '%s': %s (at offset %d)\n", span, te.Reason, te.Offset)
			} else {
				fmt.Fprintf(e.stderr, "Failed to show time span '%s': %v\n", span, err)
			}
			return exitFailure
		}
		if i < len(p.args)-1 {
			fmt.Fprintln(e.stdout)
		}
	}
	return exitOK
}

// parseBaseTime reads "@SECONDS[.FRACTION]", RFC 3339, or a local
// "YYYY-MM-DD[ HH:MM[:SS]]".
func parseBaseTime(s string) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		whole, frac, _ := strings.Cut(rest, ".")
		sec, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("%q: expected seconds since the epoch", s)
		}
		var us int64
		if frac != "" {
			frac = (frac + "000000")[:6]
			if us, err = strconv.ParseInt(frac, 10, 64); err != nil {
				return time.Time{}, fmt.Errorf("%q: bad fraction", s)
			}
		}
		return time.Unix(sec, us*1000), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: expected @SECONDS, RFC 3339 or YYYY-MM-DD HH:MM:SS", s)
}
