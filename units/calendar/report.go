package calendar

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ReportOptions say how to render a calendar report.
type ReportOptions struct {
	// Iterations is how many elapses to show (systemd-analyze's default
	// is 1).
	Iterations int
	// Base is the time the first elapse is searched after (systemd-analyze
	// --base-time; normally the present).
	Base time.Time
	// Now is the present, for the "From now" lines.
	Now time.Time
	// Local is the machine's zone: expressions without a zone elapse in
	// it and timestamps are shown in it. nil means time.Local.
	Local *time.Location
}

// field is one line of systemd's vertical tables: "  Label: value".
type field struct{ label, value string }

// writeFields writes the labels right-aligned to the widest one.
func writeFields(w io.Writer, fields []field) error {
	width := 0
	for _, f := range fields {
		width = max(width, utf8.RuneCountInString(f.label))
	}
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(strings.Repeat(" ", width-utf8.RuneCountInString(f.label)))
		b.WriteString(f.label)
		b.WriteString(": ")
		// systemd's tables drop trailing white space from a cell.
		b.WriteString(strings.TrimRight(f.value, " \t\n\r"))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCalendarReport writes what `systemd-analyze calendar EXPR` prints:
// the original form (when it differs), the normalized form and the next
// elapses with their UTC times and distance from now. A parse error is
// returned and nothing is written.
func WriteCalendarReport(w io.Writer, expr string, opt ReportOptions) error {
	local := opt.Local
	if local == nil {
		local = time.Local
	}
	spec, err := parse(expr, local)
	if err != nil {
		return err
	}
	normalized := spec.String()
	var fields []field
	if normalized != expr {
		fields = append(fields, field{"Original form", expr})
	}
	fields = append(fields, field{"Normalized form", normalized})
	showUTC := !isUTC(local)
	n := opt.Base.In(local)
	for i := 0; i < opt.Iterations; i++ {
		next, err := spec.Elapse(n)
		if errors.Is(err, ErrNever) {
			if i == 0 {
				fields = append(fields, field{"Next elapse", "never"})
			}
			break
		}
		if err != nil {
			return fmt.Errorf("determine next elapse for '%s': %w", expr, err)
		}
		label := "Next elapse"
		if i > 0 {
			label = "Iter. #" + strconv.Itoa(i+1)
		}
		fields = append(fields, field{label, FormatTimestamp(next, local)})
		if showUTC {
			fields = append(fields, field{"(in UTC)", FormatTimestamp(next, time.UTC)})
		}
		fields = append(fields, field{"From now", FormatRelative(next, opt.Now)})
		n = next.In(local)
	}
	return writeFields(w, fields)
}

// WriteTimespanReport writes what `systemd-analyze timespan SPAN` prints:
// the span as given, in microseconds, and in systemd's own words.
func WriteTimespanReport(w io.Writer, span string) error {
	t, err := ParseTimespan(span)
	if err != nil {
		return err
	}
	return writeFields(w, []field{
		{"Original", span},
		{"μs", strconv.FormatUint(uint64(t), 10)},
		{"Human", FormatTimespan(t)},
	})
}

// isUTC reports whether loc is UTC all year, as glibc's "timezone == 0 &&
// daylight == 0" tells systemd-analyze to leave out the "(in UTC)" lines.
func isUTC(loc *time.Location) bool {
	if loc == time.UTC {
		return true
	}
	_, offsets := zoneAbbreviations(loc)
	return offsets[0] == 0 && offsets[1] == 0
}
