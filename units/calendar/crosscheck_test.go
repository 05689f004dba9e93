package calendar

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// systemdAnalyze runs systemd-analyze in zone tz and returns its standard
// output and whether it succeeded.
func systemdAnalyze(t *testing.T, tz string, args ...string) (string, string, bool) {
	t.Helper()
	cmd := exec.Command("systemd-analyze", args...)
	cmd.Env = append(os.Environ(), "TZ="+tz, "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8", "SYSTEMD_LOG_LEVEL=err")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("run systemd-analyze: %v", err)
	}
	return stdout.String(), stderr.String(), err == nil
}

func needSystemdAnalyze(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed; nothing to cross-check against")
	}
}

// withoutFromNow drops the "From now" lines, which depend on the moment
// each program runs.
func withoutFromNow(s string) string {
	var keep []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "From now:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// exprGenerator makes calendar expressions from the whole language,
// mostly valid, some not.
type exprGenerator struct{ r *rand.Rand }

func (g exprGenerator) pick(options ...string) string { return options[g.r.Intn(len(options))] }

func (g exprGenerator) num(lo, hi int, width int) string {
	return fmt.Sprintf("%0*d", width*g.r.Intn(2), lo+g.r.Intn(hi-lo+1))
}

// field makes one field's value list within lo..hi (sometimes a little
// beyond, to exercise the range checks).
func (g exprGenerator) field(lo, hi int, star bool) string {
	if star && g.r.Intn(3) == 0 {
		return "*"
	}
	if g.r.Intn(25) == 0 {
		hi++ // occasionally out of range
	}
	var items []string
	for n := 1 + g.r.Intn(3); n > 0; n-- {
		a := lo + g.r.Intn(hi-lo+1)
		switch g.r.Intn(6) {
		case 0, 1, 2:
			items = append(items, fmt.Sprint(a))
		case 3:
			b := a + g.r.Intn(hi-a+1)
			items = append(items, fmt.Sprintf("%d..%d", a, b))
		case 4:
			items = append(items, fmt.Sprintf("%d/%d", a, 1+g.r.Intn(max(1, (hi-lo)/2))))
		case 5:
			b := a + g.r.Intn(hi-a+1)
			items = append(items, fmt.Sprintf("%d..%d/%d", a, b, 1+g.r.Intn(max(1, (b-a+1)))))
		}
		if g.r.Intn(2) == 0 {
			break
		}
	}
	return strings.Join(items, ",")
}

func (g exprGenerator) seconds() string {
	switch g.r.Intn(8) {
	case 0:
		return "*"
	case 1:
		return fmt.Sprintf("%d.%d", g.r.Intn(60), g.r.Intn(1000))
	case 2:
		return fmt.Sprintf("%d/%d.5", g.r.Intn(30), g.r.Intn(10))
	case 3:
		return fmt.Sprintf("%d..%d/%d", g.r.Intn(20), 20+g.r.Intn(40), 1+g.r.Intn(15))
	}
	return g.field(0, 59, false)
}

func (g exprGenerator) weekdays() string {
	names := []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	long := []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	name := func(i int) string {
		if g.r.Intn(4) == 0 {
			return strings.ToLower(long[i])
		}
		return names[i]
	}
	var items []string
	for n := 1 + g.r.Intn(3); n > 0; n-- {
		a := g.r.Intn(7)
		if g.r.Intn(2) == 0 {
			b := a + g.r.Intn(7-a)
			if g.r.Intn(20) == 0 {
				a, b = b, a // backwards: invalid unless equal
			}
			items = append(items, name(a)+g.pick("..", "..", "-")+name(b))
		} else {
			items = append(items, name(a))
		}
	}
	return strings.Join(items, ",")
}

func (g exprGenerator) expr() string {
	if g.r.Intn(8) == 0 {
		return g.mutate(g.wellFormed())
	}
	return g.wellFormed()
}

// mutate inserts, deletes or replaces a few bytes, to compare how odd
// syntax is accepted or refused.
func (g exprGenerator) mutate(s string) string {
	const alphabet = "*-~:.,/ 0123456789@MonFriUTCsu"
	b := []byte(s)
	for n := 1 + g.r.Intn(2); n > 0 && len(b) > 0; n-- {
		i := g.r.Intn(len(b))
		c := alphabet[g.r.Intn(len(alphabet))]
		switch g.r.Intn(3) {
		case 0:
			b = append(b[:i], append([]byte{c}, b[i:]...)...)
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b[i] = c
		}
	}
	return string(b)
}

func (g exprGenerator) wellFormed() string {
	if g.r.Intn(10) == 0 {
		s := g.pick("minutely", "hourly", "daily", "monthly", "weekly", "yearly", "annually", "quarterly", "semiannually", "semi-annually", "bi-annually")
		return s + g.zone()
	}
	var parts []string
	if g.r.Intn(3) == 0 {
		parts = append(parts, g.weekdays())
	}
	if g.r.Intn(4) != 0 {
		sep := "-"
		if g.r.Intn(6) == 0 {
			sep = "~"
		}
		day := g.field(1, 31, true)
		if sep == "~" {
			day = g.field(1, 28, true)
		}
		switch g.r.Intn(3) {
		case 0:
			parts = append(parts, g.field(1, 12, true)+sep+day)
		default:
			year := g.pick("*", "*", "2024", "25", "2023..2030", "2024..2040/4", "2025,2027", "1970..2199/50")
			parts = append(parts, year+"-"+g.field(1, 12, true)+sep+day)
		}
	}
	if g.r.Intn(5) != 0 {
		tm := g.field(0, 23, true) + ":" + g.field(0, 59, true)
		if g.r.Intn(2) == 0 {
			tm += ":" + g.seconds()
		}
		parts = append(parts, tm)
	}
	if len(parts) == 0 {
		parts = append(parts, g.num(0, 23, 2)+":"+g.num(0, 59, 2))
	}
	return strings.Join(parts, " ") + g.zone()
}

func (g exprGenerator) zone() string {
	switch g.r.Intn(8) {
	case 0:
		return " UTC"
	case 1:
		return " Europe/Berlin"
	case 2:
		return " " + g.pick("America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Auckland")
	}
	return ""
}

// bases are the times the searches start from: around the daylight saving
// changes of 2024 in the zones the generator uses, and some others.
func crossCheckBases(r *rand.Rand) []int64 {
	fixed := []string{
		"2024-03-31 00:59:59", "2024-03-31 00:30:00", "2024-10-27 00:30:00", "2024-10-27 00:59:59.5",
		"2024-03-10 06:30:00", "2024-11-03 05:30:00", "2024-04-06 15:00:00", "2024-10-05 15:30:00",
		"2024-02-28 23:00:00", "2023-12-31 23:59:59", "2026-06-15 12:34:56.25",
	}
	var out []int64
	for _, s := range fixed {
		out = append(out, utcTime(s).UnixMicro())
	}
	for range 6 {
		out = append(out, time.Date(2000+r.Intn(40), 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int63n(int64(365*24*time.Hour)))).Truncate(time.Second).UnixMicro())
	}
	return out
}

// TestCrossCheckWithSystemdAnalyze compares the whole report (normalized
// form and five elapses, in UTC and in Europe/Berlin) with what this
// machine's systemd-analyze prints, for a few hundred generated
// expressions.
func TestCrossCheckWithSystemdAnalyze(t *testing.T) {
	needSystemdAnalyze(t)
	n, seed := 400, int64(10)
	if testing.Short() {
		n = 60
	}
	// CALENDAR_CROSSCHECK=N,SEED runs a longer or different comparison.
	if v := os.Getenv("CALENDAR_CROSSCHECK"); v != "" {
		if _, err := fmt.Sscanf(v, "%d,%d", &n, &seed); err != nil {
			t.Fatalf("CALENDAR_CROSSCHECK=%q: want N,SEED", v)
		}
	}
	r := rand.New(rand.NewSource(seed))
	g := exprGenerator{r}
	bases := crossCheckBases(r)
	type job struct {
		expr string
		tz   string
		base int64
	}
	var jobs []job
	for i := range n {
		jobs = append(jobs, job{g.expr(), []string{"UTC", "Europe/Berlin"}[i%2], bases[r.Intn(len(bases))]})
	}
	// Some fixed ones, in both zones, from every base.
	for _, e := range []string{"*-*-* 02:30", "*-*-* 02:00:00", "*:0/30", "*-*-* 03:00", "daily", "hourly", "*-*-* 02,03:15", "Sun *-*-* 01..03:*:00", "*-*~01 02:30"} {
		for _, b := range bases[:8] {
			jobs = append(jobs, job{e, "Europe/Berlin", b}, job{e, "UTC", b})
		}
	}
	var mu sync.Mutex
	accepted, rejected := 0, 0
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			base := fmt.Sprintf("--base-time=@%d.%06d", j.base/1e6, j.base%1e6)
			want, stderr, ok := systemdAnalyze(t, j.tz, "calendar", "--iterations=5", base, j.expr)
			local := mustZone(t, j.tz)
			var got bytes.Buffer
			err := WriteCalendarReport(&got, j.expr, ReportOptions{Iterations: 5, Base: time.UnixMicro(j.base), Now: time.Now(), Local: local})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case !ok && err == nil:
				t.Errorf("TZ=%s %q %s: systemd-analyze refuses it (%s) but we accept it:\n%s", j.tz, j.expr, base, strings.TrimSpace(stderr), got.String())
			case ok && err != nil:
				t.Errorf("TZ=%s %q %s: we refuse it (%v) but systemd-analyze accepts it:\n%s", j.tz, j.expr, base, err, want)
			case ok && withoutFromNow(want) != withoutFromNow(got.String()):
				t.Errorf("TZ=%s %q %s:\nsystemd-analyze:\n%s\nwe:\n%s", j.tz, j.expr, base, want, got.String())
			case ok:
				accepted++
			default:
				rejected++
			}
		}()
	}
	wg.Wait()
	t.Logf("%d expressions agree with systemd-analyze (%d accepted, %d refused by both)", accepted+rejected, accepted, rejected)
}

// TestTimespanCrossCheck compares ParseTimespan and FormatTimespan with
// systemd-analyze timespan.
func TestTimespanCrossCheck(t *testing.T) {
	needSystemdAnalyze(t)
	spans := []string{"0", "1", "1.5s", "1h 30min", "3M", "1y", "infinity", " infinity ", "1us", "61", "5d 3h",
		"1min 1.5s", "0.9999999s", "1.5ms", "1000y", "+5s", "5 s", "1.s", "1m30", "30.5min", "1ns", "1µs", "1μs",
		"2 weeks", "1w2d", "1months", "1M1m1ms1us", ".5", "-1", "1 2 3", "1hx", "1.5.5", "2.25h", "18446744073709551615",
		"584554y", "600000y", "1e3", "10seconds", "1 sec 1 msec", "7 days", "1.123456789s", "12 hours 30 minutes",
		"\t1s\n", "1 minute", "", " ", "1y 11month", "1 hr", "0.000001s", "0.0000005s", "+.5s", ".s"}
	for _, span := range spans {
		want, _, ok := systemdAnalyze(t, "UTC", "timespan", "--", span)
		var got bytes.Buffer
		err := WriteTimespanReport(&got, span)
		switch {
		case !ok && err == nil:
			t.Errorf("timespan %q: systemd-analyze refuses it, we print\n%s", span, got.String())
		case ok && err != nil:
			t.Errorf("timespan %q: we refuse it (%v), systemd-analyze prints\n%s", span, err, want)
		case ok && want != got.String():
			t.Errorf("timespan %q:\nsystemd-analyze:\n%s\nwe:\n%s", span, want, got.String())
		}
	}
}
