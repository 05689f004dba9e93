package calendar

import (
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "quarterly", "semiannually",
	"Mon..Fri *-*-* 04:00", "Sat,Sun", "*-*-* 04:00:00", "*:0/15", "8..18/2:00", "*-*~01", "*-02~03",
	"*:*:0.5", "00:00:00.250000", "daily Europe/Berlin", "*-02-30", "@1700000000", "2024-*-01 UTC",
	"05:40:23.4200004/3.1700005", "Wed..Sat,Tue 12-10-15 1:2:3", "*-*~17..23,26..28", "Mon-",
	"*:*:1..1.5", "1,2,3,4,5:0", "@-0", "@ 99", "*-*-*  1:2", "9999999999:0", "*:*:59.9999999",
}

// FuzzParse: no input panics; what parses prints a normalized form that
// parses to itself; Next terminates and, in UTC, finds its own result
// again when searching from just before it.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, int64(1700000000))
	}
	f.Fuzz(func(t *testing.T, expr string, base int64) {
		s, err := parse(expr, time.UTC)
		if err != nil {
			return
		}
		norm := s.String()
		again, err := parse(norm, time.UTC)
		if err != nil {
			t.Fatalf("normalized form %q of %q does not parse: %v", norm, expr, err)
		}
		if again.String() != norm {
			t.Fatalf("normalized form %q of %q normalizes to %q", norm, expr, again.String())
		}
		at := time.Unix(base%(300*365*86400), 0).UTC()
		next, ok := s.Next(at)
		if !ok {
			return
		}
		if !next.After(at) {
			t.Fatalf("%q: Next(%v) = %v is not after it", expr, at, next)
		}
		if s.loc == nil {
			if again, ok := s.Next(next.Add(-time.Microsecond)); !ok || !again.Equal(next) {
				t.Fatalf("%q: Next(%v - 1µs) = %v, want %v", expr, next, again, next)
			}
		}
	})
}

// FuzzParseTimespan: no input panics, and every span below 584,000 years
// formats to text that parses back to the same span.
func FuzzParseTimespan(f *testing.F) {
	for _, s := range []string{"1.5s", "1h 30min", "3M", "infinity", "0", "1min 1.5s", "0.9999999s", "1000y", "+5s", "1m30", ".5", "1.s", "1e3", "18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, span string) {
		v, err := ParseTimespan(span)
		// Near the top of the range systemd's parser refuses its own
		// output (584542y is "too large" for parse_time); so do we.
		if err != nil || v >= 584000*Year {
			return
		}
		text := FormatTimespan(v)
		back, err := ParseTimespan(text)
		if err != nil || back != v {
			t.Fatalf("%q = %d formats as %q, which parses to %d (%v)", span, v, text, back, err)
		}
	})
}
