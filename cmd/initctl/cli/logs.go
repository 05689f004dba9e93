package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"vigil/units/api"
)

func (e *env) runLogs(p *parsed) int {
	unit := p.str("unit", "")
	if unit != "" {
		unit = mangleUnit(unit, ".service")
	}
	if len(p.args) == 1 {
		if unit != "" && unit != p.args[0] {
			fmt.Fprintf(e.stderr, "%s logs: two units given (%s and %s)\n", e.program, unit, p.args[0])
			return exitUsage
		}
		unit = p.args[0]
	}
	follow := p.has("follow")
	def := 0
	if follow {
		def = 10
	}
	lines, err := p.int("lines", def)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s logs: %v\n", e.program, err)
		return exitUsage
	}
	since, err := parseSince(p.str("since", ""), e.now())
	if err != nil {
		fmt.Fprintf(e.stderr, "%s logs: --since: %v\n", e.program, err)
		return exitUsage
	}
	print := func(l api.LogLine) {
		if e.json {
			e.printJSONLine(l)
			return
		}
		if e.bare {
			fmt.Fprintln(e.stdout, l.Text)
			return
		}
		fmt.Fprintln(e.stdout, formatLogLine(l))
	}
	// With -f the manager sends the backlog and then new lines as progress
	// frames; without it, it answers with the lines. Both are handled.
	var backlog []api.LogLine
	err = e.call(api.MethodLogs, api.LogsArgs{Unit: unit, Lines: lines, Follow: follow, Since: since}, &backlog, func(raw json.RawMessage) {
		var l api.LogLine
		if json.Unmarshal(raw, &l) == nil {
			print(l)
		}
	})
	if err != nil {
		what := "show logs"
		if unit != "" {
			what += " of " + unit
		}
		code := e.fail(what, err)
		if code == exitInterrupted && follow {
			return exitOK // Ctrl-C is how -f ends
		}
		return code
	}
	for _, l := range backlog {
		print(l)
	}
	return exitOK
}

// parseSince reads --since: "" (no limit), RFC 3339, "2006-01-02 15:04:05"
// and shorter forms (local time), "15:04" (today), "@UNIXSECONDS", "now",
// "today", "yesterday", "tomorrow", and relative times such as
// "10min ago", "-1h 30min" or "+5s".
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	switch s {
	case "now":
		return now, nil
	case "today":
		return midnight, nil
	case "yesterday":
		return midnight.AddDate(0, 0, -1), nil
	case "tomorrow":
		return midnight.AddDate(0, 0, 1), nil
	}
	if strings.HasPrefix(s, "@") {
		f, err := strconv.ParseFloat(s[1:], 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
			return time.Time{}, fmt.Errorf("%q: expected @ and seconds since 1970", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	if rest, ok := strings.CutSuffix(s, " ago"); ok {
		d, err := parseTimespan(rest)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(-d), nil
	}
	if s[0] == '-' || s[0] == '+' {
		d, err := parseTimespan(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return midnight.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: expected a time such as 2024-01-02 15:04:05, RFC 3339, today, yesterday or \"10min ago\"", s)
}

// parseTimespan reads systemd's time spans: "1min 30s", "500ms", "2h",
// "1.5d", "3 weeks". A bare number is seconds.
func parseTimespan(s string) (time.Duration, error) {
	units := []struct {
		names []string
		size  time.Duration
	}{
		{[]string{"us", "usec", "µs"}, time.Microsecond},
		{[]string{"ms", "msec"}, time.Millisecond},
		{[]string{"s", "sec", "second", "seconds"}, time.Second},
		{[]string{"m", "min", "minute", "minutes"}, time.Minute},
		{[]string{"h", "hr", "hour", "hours"}, time.Hour},
		{[]string{"d", "day", "days"}, 24 * time.Hour},
		{[]string{"w", "week", "weeks"}, 7 * 24 * time.Hour},
		{[]string{"M", "month", "months"}, 30*24*time.Hour + 10*time.Hour + 30*time.Minute},
		{[]string{"y", "year", "years"}, 365*24*time.Hour + 6*time.Hour},
	}
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty time span")
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("time span %q: expected a number at %q", orig, s)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("time span %q: bad number %q", orig, s[:i])
		}
		s = strings.TrimLeft(s[i:], " ")
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9') && s[j] != ' ' && s[j] != '.' {
			j++
		}
		word := s[:j]
		s = strings.TrimLeft(s[j:], " ")
		size := time.Duration(0)
		if word == "" {
			size = time.Second
		}
		for _, u := range units {
			for _, name := range u.names {
				if word == name {
					size = u.size
				}
			}
		}
		if size == 0 {
			return 0, fmt.Errorf("time span %q: unknown unit %q", orig, word)
		}
		total += n * float64(size)
		if total > float64(math.MaxInt64) {
			return 0, fmt.Errorf("time span %q: too long", orig)
		}
	}
	return time.Duration(total), nil
}
