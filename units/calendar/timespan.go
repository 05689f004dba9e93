package calendar

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Timespan is a length of time in microseconds, systemd's usec_t. It
// reaches far beyond time.Duration (584,000 years against 292), which
// systemd's syntax allows ("1000y"); Infinity means "never".
type Timespan uint64

// Infinity is systemd's USEC_INFINITY, written "infinity".
const Infinity Timespan = math.MaxUint64

// The units of systemd's time spans, in microseconds. A month is a
// twelfth of a year of 365.25 days (30.4375 days).
const (
	Microsecond Timespan = 1
	Millisecond          = 1000 * Microsecond
	Second               = 1000 * Millisecond
	Minute               = 60 * Second
	Hour                 = 60 * Minute
	Day                  = 24 * Hour
	Week                 = 7 * Day
	Year                 = 31557600 * Second
	Month                = 2629800 * Second
)

// Duration converts t to a time.Duration, saturating at the largest one
// (which is also what Infinity becomes).
func (t Timespan) Duration() time.Duration {
	if t > Timespan(math.MaxInt64/int64(time.Microsecond)) {
		return math.MaxInt64
	}
	return time.Duration(t) * time.Microsecond
}

// String formats t like FormatTimespan.
func (t Timespan) String() string { return FormatTimespan(t) }

// spanUnits are the suffixes systemd's parse_time accepts, in the order it
// tries them (longest first where one is a prefix of another, so "ms" is
// not read as "m" followed by "s").
var spanUnits = [...]struct {
	suffix string
	length Timespan
}{
	{"seconds", Second}, {"second", Second}, {"sec", Second}, {"s", Second},
	{"minutes", Minute}, {"minute", Minute}, {"min", Minute},
	{"months", Month}, {"month", Month}, {"M", Month},
	{"msec", Millisecond}, {"ms", Millisecond}, {"m", Minute},
	{"hours", Hour}, {"hour", Hour}, {"hr", Hour}, {"h", Hour},
	{"days", Day}, {"day", Day}, {"d", Day},
	{"weeks", Week}, {"week", Week}, {"w", Week},
	{"years", Year}, {"year", Year}, {"y", Year},
	{"usec", Microsecond}, {"us", Microsecond}, {"µs", Microsecond}, {"μs", Microsecond},
}

// TimespanError says why a time span did not parse.
type TimespanError struct {
	Span   string
	Offset int
	Reason string
}

func (e *TimespanError) Error() string {
	return fmt.Sprintf("time span %q, at offset %d: %s", e.Span, e.Offset, e.Reason)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ParseTimespan parses a time span as systemd does (parse_sec): numbers
// with optional fractions, each followed by an optional unit (seconds when
// none: "1min 30s", "1h30m", "2.5", "500 ms"), or "infinity".
func ParseTimespan(s string) (Timespan, error) {
	fail := func(at int, format string, args ...any) (Timespan, error) {
		return 0, &TimespanError{Span: s, Offset: at, Reason: fmt.Sprintf(format, args...)}
	}
	i := 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	skip()
	if strings.HasPrefix(s[i:], "infinity") {
		j := i + len("infinity")
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j != len(s) {
			return fail(j, "unexpected %q after infinity", s[j:])
		}
		return Infinity, nil
	}
	var total Timespan
	something := false
	for {
		skip()
		if i == len(s) {
			if !something {
				return fail(i, "empty time span")
			}
			return total, nil
		}
		at := i
		// strtoll: an optional sign, then digits.
		j := i
		if s[j] == '-' {
			return fail(j, "negative time span")
		}
		if s[j] == '+' {
			j++
		}
		digits := j
		var whole uint64
		overflow := false
		for j < len(s) && isDigit(s[j]) {
			d := uint64(s[j] - '0')
			if whole > (math.MaxInt64-d)/10 {
				overflow = true
			}
			whole = whole*10 + d
			j++
		}
		if overflow {
			return fail(at, "number out of range")
		}
		if j == digits {
			j = at // strtoll read nothing
		}
		hasDigits := j > digits
		fraction := -1
		if j < len(s) && s[j] == '.' {
			fraction = j + 1
			i = j + 1
			for i < len(s) && isDigit(s[i]) {
				i++
			}
		} else if !hasDigits {
			return fail(at, "expected a number, found %q", s[at:])
		} else {
			i = j
		}
		// The unit, after optional spaces.
		k := i
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		unit := Second
		matched := false
		for _, u := range spanUnits {
			if strings.HasPrefix(s[k:], u.suffix) {
				unit, k, matched = u.length, k+len(u.suffix), true
				break
			}
		}
		if !matched {
			if k < len(s) && k == i {
				return fail(i, "unknown unit %q (use us, ms, s, min, h, d, w, M, y)", unitWord(s[i:]))
			}
			k = i // spaces before the next number are skipped anyway
		}
		i = k
		if Timespan(whole) >= Infinity/unit {
			return fail(at, "time span too large")
		}
		part := Timespan(whole) * unit
		if part >= Infinity-total {
			return fail(at, "time span too large")
		}
		total += part
		something = true
		if fraction >= 0 {
			m := unit / 10
			b := fraction
			for ; b < len(s) && isDigit(s[b]); b++ {
				part := Timespan(s[b]-'0') * m
				if part >= Infinity-total {
					return fail(at, "time span too large")
				}
				total += part
				m /= 10
			}
			if b == fraction {
				return fail(fraction, "expected digits after the decimal point")
			}
		}
	}
}

func unitWord(s string) string {
	end := 0
	for end < len(s) && !isSpace(s[end]) && !isDigit(s[end]) {
		end++
	}
	if end == 0 && len(s) > 0 {
		end = 1
	}
	return s[:end]
}

// FormatTimespan renders t as systemd's format_timespan does with full
// precision ("1h 30min", "1min 1.500000s", "999.999ms", "3month",
// "infinity"); ParseTimespan reads it back.
func FormatTimespan(t Timespan) string {
	return FormatTimespanAccuracy(t, 0)
}

// FormatTimespanAccuracy is FormatTimespan dropping what is finer than
// accuracy (systemd prints timer accuracies and list-timers columns so).
func FormatTimespanAccuracy(t, accuracy Timespan) string {
	if t == Infinity {
		return "infinity"
	}
	if t == 0 {
		return "0"
	}
	table := [...]struct {
		suffix string
		length Timespan
	}{
		{"y", Year}, {"month", Month}, {"w", Week}, {"d", Day}, {"h", Hour},
		{"min", Minute}, {"s", Second}, {"ms", Millisecond}, {"us", Microsecond},
	}
	var b strings.Builder
	something := false
	for _, u := range table {
		if t == 0 || (t < accuracy && something) {
			break
		}
		if t < u.length {
			continue
		}
		a, rest := t/u.length, t%u.length
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		done := false
		// Below a minute, a remainder is shown as a decimal fraction.
		if t < Minute && rest > 0 {
			digits := 0
			for cc := u.length; cc > 1; cc /= 10 {
				digits++
			}
			for cc := accuracy; cc > 1; cc /= 10 {
				rest /= 10
				digits--
			}
			if digits > 0 {
				fmt.Fprintf(&b, "%d.%0*d%s", a, digits, rest, u.suffix)
				t = 0
				done = true
			}
		}
		if !done {
			b.WriteString(strconv.FormatUint(uint64(a), 10))
			b.WriteString(u.suffix)
			t = rest
		}
		something = true
	}
	return b.String()
}

// FormatRelative says how far t is from now as systemd's
// format_timestamp_relative does ("5min left", "1 day 13h ago", "now").
func FormatRelative(t, now time.Time) string {
	d := now.Sub(t)
	suffix := "ago"
	if d < 0 {
		d, suffix = -d, "left"
	}
	// Microseconds, as systemd counts; time.Duration covers ±292 years,
	// enough for any timestamp systemd formats against the present.
	us := Timespan(d / time.Microsecond)
	plural := func(n Timespan, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	}
	switch {
	case us >= Year:
		years, months := us/Year, us%Year/Month
		return fmt.Sprintf("%d %s %d %s %s", years, plural(years, "year", "years"), months, plural(months, "month", "months"), suffix)
	case us >= Month:
		months, days := us/Month, us%Month/Day
		return fmt.Sprintf("%d %s %d %s %s", months, plural(months, "month", "months"), days, plural(days, "day", "days"), suffix)
	case us >= Week:
		weeks, days := us/Week, us%Week/Day
		return fmt.Sprintf("%d %s %d %s %s", weeks, plural(weeks, "week", "weeks"), days, plural(days, "day", "days"), suffix)
	case us >= 2*Day:
		return fmt.Sprintf("%d days %s", us/Day, suffix)
	case us >= 25*Hour:
		return fmt.Sprintf("1 day %dh %s", (us-Day)/Hour, suffix)
	case us >= 6*Hour:
		return fmt.Sprintf("%dh %s", us/Hour, suffix)
	case us >= Hour:
		return fmt.Sprintf("%dh %dmin %s", us/Hour, us%Hour/Minute, suffix)
	case us >= 5*Minute:
		return fmt.Sprintf("%dmin %s", us/Minute, suffix)
	case us >= Minute:
		return fmt.Sprintf("%dmin %ds %s", us/Minute, us%Minute/Second, suffix)
	case us >= Second:
		return fmt.Sprintf("%ds %s", us/Second, suffix)
	case us >= Millisecond:
		return fmt.Sprintf("%dms %s", us/Millisecond, suffix)
	case us > 0:
		return fmt.Sprintf("%dus %s", us, suffix)
	}
	return "now"
}

// FormatTimestamp renders t in loc as systemd's format_timestamp does
// ("Fri 2026-11-27 10:45:00 CET"; "UTC" for UTC).
func FormatTimestamp(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	s := t.Format("Mon 2006-01-02 15:04:05")
	if loc == time.UTC {
		return s + " UTC"
	}
	if name, _ := t.Zone(); name != "" {
		return s + " " + name
	}
	return s
}
