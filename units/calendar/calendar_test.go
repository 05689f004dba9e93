package calendar

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

// The examples of man systemd.time ("CALENDAR EVENTS") with the normalized
// forms the manual gives for them.
func TestDocumentedNormalizedForms(t *testing.T) {
	examples := []struct{ in, want string }{
		{"Sat,Thu,Mon..Wed,Sat..Sun", "Mon..Thu,Sat,Sun *-*-* 00:00:00"},
		{"Mon,Sun 12-*-* 2,1:23", "Mon,Sun 2012-*-* 01,02:23:00"},
		{"Wed *-1", "Wed *-*-01 00:00:00"},
		{"Wed..Wed,Wed *-1", "Wed *-*-01 00:00:00"},
		{"Wed, 17:48", "Wed *-*-* 17:48:00"},
		{"Wed..Sat,Tue 12-10-15 1:2:3", "Tue..Sat 2012-10-15 01:02:03"},
		{"*-*-7 0:0:0", "*-*-07 00:00:00"},
		{"10-15", "*-10-15 00:00:00"},
		{"monday *-12-* 17:00", "Mon *-12-* 17:00:00"},
		{"Mon,Fri *-*-3,1,2 *:30:45", "Mon,Fri *-*-01,02,03 *:30:45"},
		{"12,14,13,12:20,10,30", "*-*-* 12,13,14:10,20,30:00"},
		{"12..14:10,20,30", "*-*-* 12..14:10,20,30:00"},
		{"mon,fri *-1/2-1,3 *:30:45", "Mon,Fri *-01/2-01,03 *:30:45"},
		{"03-05 08:05:40", "*-03-05 08:05:40"},
		{"08:05:40", "*-*-* 08:05:40"},
		{"05:40", "*-*-* 05:40:00"},
		{"Sat,Sun 12-05 08:05:40", "Sat,Sun *-12-05 08:05:40"},
		{"Sat,Sun 08:05:40", "Sat,Sun *-*-* 08:05:40"},
		{"2003-03-05 05:40", "2003-03-05 05:40:00"},
		{"05:40:23.4200004/3.1700005", "*-*-* 05:40:23.420000/3.170001"},
		{"2003-02..04-05", "2003-02..04-05 00:00:00"},
		{"2003-03-05 05:40 UTC", "2003-03-05 05:40:00 UTC"},
		{"2003-03-05", "2003-03-05 00:00:00"},
		{"03-05", "*-03-05 00:00:00"},
		{"hourly", "*-*-* *:00:00"},
		{"daily", "*-*-* 00:00:00"},
		{"daily UTC", "*-*-* 00:00:00 UTC"},
		{"monthly", "*-*-01 00:00:00"},
		{"weekly", "Mon *-*-* 00:00:00"},
		{"weekly Pacific/Auckland", "Mon *-*-* 00:00:00 Pacific/Auckland"},
		{"yearly", "*-01-01 00:00:00"},
		{"annually", "*-01-01 00:00:00"},
		{"*:2/3", "*-*-* *:02/3:00"},
		// The issue's own examples.
		{"minutely", "*-*-* *:*:00"},
		{"quarterly", "*-01,04,07,10-01 00:00:00"},
		{"semiannually", "*-01,07-01 00:00:00"},
		{"Mon..Fri", "Mon..Fri *-*-* 00:00:00"},
		{"Sat,Sun", "Sat,Sun *-*-* 00:00:00"},
		{"*-*-* 04:00:00", "*-*-* 04:00:00"},
		{"*:0/15", "*-*-* *:00/15:00"},
		{"8..18/2:00", "*-*-* 08..18/2:00:00"},
		{"*-*~01", "*-*~01 00:00:00"},
		{"*-02~03", "*-02~03 00:00:00"},
		{"*:*:0.5", "*-*-* *:*:00.500000"},
		{"00:00:00.250000", "*-*-* 00:00:00.250000"},
		{"2024-*-01", "2024-*-01 00:00:00"},
		{"*-*-* *:*:*", "*-*-* *:*:*"},
		{"daily Europe/Berlin", "*-*-* 00:00:00 Europe/Berlin"},
		{"*-02-30", "*-02-30 00:00:00"},
		// Normalization details.
		{"5..5:00", "*-*-* 05:00:00"},
		{"1..2/5:00", "*-*-* 01:00:00"},
		{"*:*:0/1,5", "*-*-* *:*:*"},
		{"*:*:0.9999995", "*-*-* *:*:01"},
		{"Mon,Tue,Wed,Fri", "Mon..Wed,Fri *-*-* 00:00:00"},
		{"Mon-Wed", "Mon..Wed *-*-* 00:00:00"},
		{"Mon..Sun", "*-*-* 00:00:00"},
		{"*-*~*", "*-*-* 00:00:00"},
		{"70-1-1", "1970-01-01 00:00:00"},
		{"69-1-1", "2069-01-01 00:00:00"},
		{"@1700000000", "2023-11-14 22:13:20 UTC"},
		{"@-0", "1970-01-01 00:00:00 UTC"},
		{"2024..2031/3-01-01", "2024..2030/3-01-01 00:00:00"},
		{"*-*-* 1:2:3 utc", "*-*-* 01:02:03 UTC"},
	}
	for _, ex := range examples {
		s, err := parse(ex.in, time.UTC)
		if err != nil {
			t.Errorf("Parse(%q): %v", ex.in, err)
			continue
		}
		if got := s.String(); got != ex.want {
			t.Errorf("Parse(%q).String() = %q, want %q", ex.in, got, ex.want)
		}
		// The normalized form parses to itself.
		again, err := parse(s.String(), time.UTC)
		if err != nil || again.String() != s.String() {
			t.Errorf("normalized form %q does not parse to itself: %v", s.String(), err)
		}
	}
}

func TestParseErrorsGivePositionAndReason(t *testing.T) {
	cases := []struct {
		in     string
		offset int
		reason string
	}{
		{"", 0, "empty"},
		{"foo", 0, "expected a number"},
		{"Wed..Mon", 5, "backwards"},
		{"Mon..", 5, "without an end"},
		{"Mond", 3, "weekday"},
		{"*-*-* 25:00", 6, "hour 25 out of range 0..23"},
		{"*-*-* 12:60", 9, "minute 60 out of range"},
		{"*-13-01", 2, "month 13"},
		{"*-02-30 12:00:61", 14, "second 61 out of range"},
		{"*:59/1", 2, "never repeats"},
		{"*-*~01/2", 4, "before the month's start"},
		{"*-*~17..23,26..28", 11, "out of range 1..25"},
		{"*-*~7..1", 4, "empty"},
		{"*:*:1..1.5", 4, "explicit /repetition"},
		{"*:*:1.", 6, "digits after the decimal point"},
		{"*:0/0", 4, "repetition of 0"},
		{"1..5", 4, "expected ':' after the hour"},
		{"1..5~", 5, "expected a number"},
		{"*~2-3", 3, "'~' may only stand between month and day"},
		{"12:00 Mars/Olympus", 5, "expected ':' after the minute"},
		{"2300-01-01", 0, "year 2300 out of range 1970..2199"},
		{"*-*-* 1,", 8, "expected a number, found the end"},
		{"@99999999999999", 1, "after 2199"},
	}
	for _, c := range cases {
		_, err := parse(c.in, time.UTC)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want a *ParseError", c.in, err)
			continue
		}
		if pe.Offset != c.offset || !strings.Contains(pe.Reason, c.reason) {
			t.Errorf("Parse(%q): offset %d reason %q; want offset %d and a reason with %q", c.in, pe.Offset, pe.Reason, c.offset, c.reason)
		}
	}
}

func utcTime(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		panic(err)
	}
	return t
}

// Elapses worked out by hand from the rules in man systemd.time.
func TestNextFromDocumentedRules(t *testing.T) {
	cases := []struct {
		expr, after string
		want        []string // successive elapses, UTC
	}{
		{"*:0/15", "2024-01-01 10:07:00", []string{"2024-01-01 10:15:00", "2024-01-01 10:30:00", "2024-01-01 10:45:00", "2024-01-01 11:00:00"}},
		{"8..18/2:00", "2024-01-01 17:00:00", []string{"2024-01-01 18:00:00", "2024-01-02 08:00:00", "2024-01-02 10:00:00"}},
		{"*-*~01", "2024-01-31 00:00:00", []string{"2024-02-29 00:00:00", "2024-03-31 00:00:00", "2024-04-30 00:00:00"}},
		{"*-02~03", "2023-06-01 00:00:00", []string{"2024-02-27 00:00:00", "2025-02-26 00:00:00"}},
		{"*-*~1..7", "2024-04-23 12:00:00", []string{"2024-04-24 00:00:00", "2024-04-25 00:00:00"}},
		{"*:*:0.5", "2024-01-01 00:00:00.5", []string{"2024-01-01 00:01:00.5"}},
		{"*:*:*", "2024-01-01 00:00:00.25", []string{"2024-01-01 00:00:01", "2024-01-01 00:00:02"}},
		{"*:*:5/0.5", "2024-01-01 00:00:59", []string{"2024-01-01 00:00:59.5", "2024-01-01 00:01:05", "2024-01-01 00:01:05.5"}},
		{"Mon..Fri 09:00", "2024-01-05 10:00:00", []string{"2024-01-08 09:00:00", "2024-01-09 09:00:00"}},
		{"Sat,Sun", "2024-01-01 00:00:00", []string{"2024-01-06 00:00:00", "2024-01-07 00:00:00", "2024-01-13 00:00:00"}},
		{"Fri *-02-29", "2024-01-01 00:00:00", []string{"2036-02-29 00:00:00", "2064-02-29 00:00:00"}},
		{"quarterly", "2024-02-15 00:00:00", []string{"2024-04-01 00:00:00", "2024-07-01 00:00:00", "2024-10-01 00:00:00", "2025-01-01 00:00:00"}},
		{"weekly", "2024-01-01 00:00:00", []string{"2024-01-08 00:00:00"}},
		{"2024-*-01", "2024-11-15 00:00:00", []string{"2024-12-01 00:00:00"}},
		{"daily Europe/Berlin", "2024-01-01 00:00:00", []string{"2024-01-01 23:00:00"}},
		{"daily Europe/Berlin", "2024-07-01 00:00:00", []string{"2024-07-01 22:00:00"}},
	}
	for _, c := range cases {
		s, err := parse(c.expr, time.UTC)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.expr, err)
		}
		at := utcTime(c.after)
		for _, w := range c.want {
			next, ok := s.Next(at)
			if !ok || !next.Equal(utcTime(w)) {
				t.Errorf("%q after %s = %s %v, want %s", c.expr, at.UTC().Format(time.StampMicro), next.UTC(), ok, w)
				break
			}
			at = next
		}
	}
}

func TestImpossibleDatesNeverElapse(t *testing.T) {
	for _, expr := range []string{"*-02-30", "*-04-31", "2024-02-30", "Mon 2024-02-29", "2023-02-29", "1999-01-01"} {
		s, err := Parse(expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		next, ok := s.Next(utcTime("2000-01-01 00:00:00"))
		if ok || !next.IsZero() {
			t.Errorf("%q elapses at %v; it never should", expr, next)
		}
		if _, err := s.Elapse(utcTime("2000-01-01 00:00:00")); !errors.Is(err, ErrNever) {
			t.Errorf("%q: Elapse error %v, want ErrNever", expr, err)
		}
	}
}

// Europe/Berlin springs forward on 2024-03-31 (02:00 CET becomes 03:00
// CEST) and falls back on 2024-10-27 (03:00 CEST becomes 02:00 CET). These
// are the elapses systemd 252 computes (checked with
// TZ=Europe/Berlin systemd-analyze calendar --base-time=...).
func TestDaylightSavingTransitionsInBerlin(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	cases := []struct {
		expr, after string // after in UTC
		want        []string
	}{
		// 02:30 does not exist on 31 March: that day is skipped.
		{"*-*-* 02:30", "2024-03-29 12:00:00", []string{"2024-03-30 01:30:00", "2024-04-01 00:30:00"}},
		// 02:30 exists twice on 27 October: it elapses once, in summer time.
		{"*-*-* 02:30", "2024-10-26 12:00:00", []string{"2024-10-27 00:30:00", "2024-10-28 01:30:00"}},
		// Every half hour across the spring gap: 01:30 CET, then 03:00 CEST.
		{"*:0/30", "2024-03-31 00:15:00", []string{"2024-03-31 00:30:00", "2024-03-31 01:00:00", "2024-03-31 01:30:00"}},
		// Daily at midnight keeps local midnight on both sides.
		{"daily", "2024-03-30 12:00:00", []string{"2024-03-30 23:00:00", "2024-03-31 22:00:00"}},
		{"daily", "2024-10-26 12:00:00", []string{"2024-10-26 22:00:00", "2024-10-27 23:00:00"}},
	}
	for _, c := range cases {
		s, err := parse(c.expr, berlin)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.expr, err)
		}
		at := utcTime(c.after).In(berlin)
		for _, w := range c.want {
			next, ok := s.Next(at)
			if !ok || !next.Equal(utcTime(w)) {
				t.Errorf("%q after %s = %s %v, want %s UTC", c.expr, at, next, ok, w)
				break
			}
			at = next
		}
	}
}

func TestNextIsStrictlyAfterAndBounded(t *testing.T) {
	s, err := Parse("*:*:*")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 5, 5, 5, 5, 0, time.UTC)
	next, ok := s.Next(at)
	if !ok || !next.Equal(at.Add(time.Second)) {
		t.Errorf("Next(%v) = %v, want one second later", at, next)
	}
	// A time a nanosecond past a whole second still elapses after it.
	next, _ = s.Next(at.Add(time.Nanosecond))
	if !next.After(at.Add(time.Nanosecond)) {
		t.Errorf("Next is not strictly after: %v", next)
	}
	// Past 2199 nothing elapses, and past 9999 the time is out of range.
	if _, ok := s.Next(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Error("elapse after 2199")
	}
	if _, err := s.Elapse(time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Elapse after year 9999: %v", err)
	}
	// Before 1970, the first elapse is the epoch.
	if next, ok := s.Next(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)); !ok || next.Unix() != 0 {
		t.Errorf("Next before 1970 = %v %v, want the epoch", next, ok)
	}
}

func TestZoneNamesAreCheckedLikeSystemd(t *testing.T) {
	for name, ok := range map[string]bool{
		"Europe/Berlin": true, "UTC": true, "Etc/GMT+5": true, "America/Argentina/Buenos_Aires": true,
		"/etc/passwd": false, "../etc/passwd": false, "Europe//Berlin": false, "Europe/": false,
		"Local": false, "": false, "Mars/Olympus": false, "right": false,
	} {
		if _, got := loadZone(name); got != ok {
			t.Errorf("loadZone(%q) = %v, want %v", name, got, ok)
		}
	}
}

// An expression ending in the local zone's abbreviation asks mktime for
// standard (CET) or daylight (CEST) time. systemd 252 then only finds
// elapses in the season that abbreviation belongs to; so do we.
func TestLocalAbbreviationPinsTheSeason(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	cases := []struct {
		expr, after, want string // want "" for never
	}{
		{"*-*-* 12:00 CET", "2024-01-01 00:00:00", "2024-01-01 11:00:00"},
		{"*-*-* 12:00 CET", "2024-07-01 00:00:00", ""},
		{"*-*-* 12:00 CEST", "2024-07-01 00:00:00", "2024-07-01 10:00:00"},
		{"*-*-* 12:00 cest", "2024-01-01 00:00:00", ""},
	}
	for _, c := range cases {
		s, err := parse(c.expr, berlin)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ToUpper(c.expr[len(c.expr)-4:]); !strings.HasSuffix(s.String(), strings.TrimSpace(want)) {
			t.Errorf("normalized %q", s.String())
		}
		next, ok := s.Next(utcTime(c.after).In(berlin))
		switch {
		case c.want == "" && ok:
			t.Errorf("%q after %s elapses at %v; systemd says never", c.expr, c.after, next.UTC())
		case c.want != "" && (!ok || !next.Equal(utcTime(c.want))):
			t.Errorf("%q after %s = %v %v, want %s UTC", c.expr, c.after, next.UTC(), ok, c.want)
		}
	}
}
