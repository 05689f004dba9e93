package calendar

import (
	"errors"
	"math"
	"time"
)

// Why Next found nothing.
var (
	// ErrNever: the expression has no elapse after the given time (a date
	// in the past, an impossible date such as *-02-30, a year past 2199).
	ErrNever = errors.New("the calendar expression never elapses")
	// ErrSearchLimit: the search took more steps than systemd allows
	// (1000); systemd treats such timers as broken, so do we.
	ErrSearchLimit = errors.New("the calendar expression did not resolve within 1000 steps")
	// ErrOutOfRange: the time to start from is past the year 9999.
	ErrOutOfRange = errors.New("the time is out of range")
)

const (
	maxSearchSteps = 1000
	// maxBaseUsec is systemd's USEC_TIMESTAMP_FORMATTABLE_MAX (9999-12-31 23:59:59 UTC).
	maxBaseUsec = 253402300799999999
)

// Next returns the first elapse strictly after after, and false when there
// is none (see Elapse for why). Without a zone in the expression it works
// in after's location: pass time.Now() to follow the machine's zone, as
// systemd does. The result is in the zone the search used.
func (s *Spec) Next(after time.Time) (time.Time, bool) {
	t, err := s.Elapse(after)
	return t, err == nil
}

// Elapse is Next with the reason when there is no elapse: ErrNever,
// ErrSearchLimit or ErrOutOfRange.
func (s *Spec) Elapse(after time.Time) (time.Time, error) {
	loc := after.Location() // also for the local zone's abbreviations (dst ≥ 0)
	switch {
	case s.utc:
		loc = time.UTC
	case s.loc != nil:
		loc = s.loc
	}
	us := after.UnixMicro() // rounds down: the result stays strictly after after
	if us > maxBaseUsec {
		return time.Time{}, ErrOutOfRange
	}
	us++
	if us < 0 {
		us = 0
	}
	z := newZoneClock(loc)
	sec, usec := us/usecPerSec, int(us%usecPerSec)
	t, off := z.broken(sec)
	z.hint = off
	sec, usec, err := s.findNext(z, t, usec)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(sec, int64(usec)*1000).In(loc), nil
}

// tm is a broken-down wall time as struct tm holds it: fields may be out
// of range until mktime normalizes them. mon counts from 0; year is the
// full year.
type tm struct {
	year, mon, mday, hour, min, sec int
	// isdst is struct tm's tm_isdst: -1 lets mktime choose; 0 or 1 asks
	// for standard or daylight time (and mktime sets what it found).
	isdst int
}

// findNext is systemd's find_next: step through year, month, day,
// weekday, hour, minute and second, each time taking the earliest match at
// or after the current value, starting over from a later point when a
// field cannot match or the wall time does not exist.
func (s *Spec) findNext(z *zoneClock, c tm, usec int) (int64, int, error) {
	resetBelowDay := func() { c.hour, c.min, c.sec, usec = 0, 0, 0, 0 }
	for step := 0; step < maxSearchSteps; step++ {
		z.mktime(&c) // normalize; a failure shows in the checks below
		c.isdst = int(s.dst)

		r := s.match(z, s.year, &c, &c.year)
		if r > 0 {
			c.mon, c.mday = 0, 1
			resetBelowDay()
		}
		if r < 0 || z.withinBounds(&c) <= 0 {
			return 0, 0, ErrNever
		}

		mon := c.mon + 1
		r = s.match(z, s.month, &c, &mon)
		c.mon = mon - 1
		if r > 0 {
			c.mday = 1
			resetBelowDay()
		}
		if r >= 0 {
			r = z.withinBounds(&c)
		}
		if r < 0 {
			c.year++
			c.mon, c.mday = 0, 1
			resetBelowDay()
			continue
		}
		if r == 0 {
			continue
		}

		r = s.match(z, s.day, &c, &c.mday)
		if r > 0 {
			resetBelowDay()
		}
		if r >= 0 {
			r = z.withinBounds(&c)
		}
		if r < 0 {
			c.mon++
			c.mday = 1
			resetBelowDay()
			continue
		}
		if r == 0 {
			continue
		}

		if !s.matchesWeekday(z, c) {
			c.mday++
			resetBelowDay()
			continue
		}

		r = s.match(z, s.hour, &c, &c.hour)
		if r > 0 {
			c.min, c.sec, usec = 0, 0, 0
		}
		if r >= 0 {
			r = z.withinBounds(&c)
		}
		if r < 0 {
			c.mday++
			resetBelowDay()
			continue
		}
		if r == 0 {
			// The hour may not exist (daylight saving): start over from
			// the normalized time.
			continue
		}

		r = s.match(z, s.minute, &c, &c.min)
		if r > 0 {
			c.sec, usec = 0, 0
		}
		if r >= 0 {
			r = z.withinBounds(&c)
		}
		if r < 0 {
			c.hour++
			c.min, c.sec, usec = 0, 0, 0
			continue
		}
		if r == 0 {
			continue
		}

		micro := c.sec*usecPerSec + usec
		r = s.match(z, s.second, &c, &micro)
		c.sec, usec = micro/usecPerSec, micro%usecPerSec
		if r >= 0 {
			r = z.withinBounds(&c)
		}
		if r < 0 {
			c.min++
			c.sec, usec = 0, 0
			continue
		}
		if r == 0 {
			continue
		}

		sec, ok := z.mktime(&c)
		if !ok {
			return 0, 0, ErrNever
		}
		return sec, usec, nil
	}
	return 0, 0, ErrSearchLimit
}

// match is find_matching_component: the earliest value at or after *val
// that chain allows. It returns 0 when *val already matches (or chain is
// "*"), 1 when it moved *val forward, -1 when nothing matches.
func (s *Spec) match(z *zoneClock, chain []component, c *tm, val *int) int {
	if chain == nil {
		return 0
	}
	endOfMonth := s.endOfMonth && len(s.day) > 0 && &chain[0] == &s.day[0]
	best, found := 0, false
	for _, x := range chain {
		start, stop := int(x.start), int(x.stop)
		if endOfMonth {
			start = z.endOfMonth(*c, start)
			stop = z.endOfMonth(*c, stop)
			if stop > 0 {
				start, stop = stop, start
			}
		}
		if start >= *val {
			if !found || start < best {
				best, found = start, true
			}
		} else if x.repeat > 0 {
			rep := int(x.repeat)
			k := start + rep*((*val-start+rep-1)/rep)
			if (!found || k < best) && (stop < 0 || k <= stop) {
				best, found = k, true
			}
		}
	}
	if !found {
		return -1
	}
	moved := *val != best
	*val = best
	if moved {
		return 1
	}
	return 0
}

// matchesWeekday reports whether the (normalized) day of c is allowed.
func (s *Spec) matchesWeekday(z *zoneClock, c tm) bool {
	if s.weekdays == 0 {
		return true
	}
	if _, ok := z.mktime(&c); !ok {
		return false
	}
	days := daysFromCivil(c.year, c.mon+1, c.mday)
	monday0 := int((days%7 + 7 + 3) % 7) // 1970-01-01 was a Thursday
	return s.weekdays&(1<<monday0) != 0
}

// zoneClock converts between wall times and instants in one location the
// way glibc's mktime(3) and localtime(3) do, including mktime's memory of
// the last offset it used, which decides between the two instances of a
// wall time that occurs twice.
type zoneClock struct {
	loc *time.Location // nil: UTC, plain arithmetic
	// hint is the UTC offset mktime used last.
	hint int
	// The zone period (start ≤ instant < end, offset) looked up last.
	start, end int64
	offset     int
	dst        bool
	cached     bool
}

func newZoneClock(loc *time.Location) *zoneClock {
	if loc == time.UTC {
		return &zoneClock{}
	}
	return &zoneClock{loc: loc}
}

// period returns the UTC offset at instant sec and the bounds of the span
// of time that has it.
func (z *zoneClock) period(sec int64) (offset int, start, end int64) {
	if z.cached && sec >= z.start && sec < z.end {
		return z.offset, z.start, z.end
	}
	t := time.Unix(sec, 0).In(z.loc)
	_, offset = t.Zone()
	z.dst = t.IsDST()
	s, e := t.ZoneBounds()
	start, end = math.MinInt64, math.MaxInt64
	if !s.IsZero() {
		start = s.Unix()
	}
	if !e.IsZero() {
		end = e.Unix()
	}
	z.start, z.end, z.offset, z.cached = start, end, offset, true
	return offset, start, end
}

// broken is localtime(3): the wall time of instant sec and its offset.
func (z *zoneClock) broken(sec int64) (tm, int) {
	off, dst := 0, false
	if z.loc != nil {
		off, _, _ = z.period(sec)
		dst = z.dst
	}
	t := civil(sec + int64(off))
	if dst {
		t.isdst = 1
	}
	return t, off
}

// mktime normalizes t like mktime(3) (timegm(3) in UTC) and returns its
// instant; ok is false for instants before 1970, which systemd treats as
// errors.
func (z *zoneClock) mktime(t *tm) (int64, bool) {
	wall := wallSeconds(*t)
	sec := wall
	if z.loc != nil {
		sec = z.resolve(wall)
		if t.isdst >= 0 {
			sec = z.preferDST(wall, sec, t.isdst == 1)
		}
	}
	*t, _ = z.broken(sec)
	return sec, sec >= 0
}

// resolve finds the instant of a wall time. A wall time that occurs twice
// resolves to the instance whose offset is closest to the last one used;
// one that a forward jump skips resolves as if the jump had not happened
// yet, which lands the same distance past the jump (glibc's behaviour).
func (z *zoneClock) resolve(wall int64) int64 {
	// Look up the period the hint points into, then the period the
	// candidate from its offset lands in, and that period's neighbours:
	// every instance of the wall time lies in one of them.
	off0, _, _ := z.period(wall - int64(z.hint))
	offP, startP, endP := z.period(wall - int64(off0))
	const margin = 2 * 86400 // more than any difference of offsets
	if x := wall - int64(offP); x >= startP+margin && x < endP-margin {
		z.hint = offP
		return x
	}
	type span struct {
		offset     int
		start, end int64
	}
	spans := make([]span, 0, 3)
	if startP != math.MinInt64 {
		o, s, e := z.period(startP - 1)
		spans = append(spans, span{o, s, e})
	}
	spans = append(spans, span{offP, startP, endP})
	if endP != math.MaxInt64 {
		o, s, e := z.period(endP)
		spans = append(spans, span{o, s, e})
	}
	var best int64
	bestOff, found := 0, false
	for _, p := range spans {
		x := wall - int64(p.offset)
		if x < p.start || x >= p.end {
			continue
		}
		if !found || abs(p.offset-z.hint) < abs(bestOff-z.hint) {
			best, bestOff, found = x, p.offset, true
		}
	}
	if found {
		z.hint = bestOff
		return best
	}
	// A gap: the wall time lies between the end of one span (at its
	// offset) and the start of the next (at that one's, larger, offset).
	for i := 0; i+1 < len(spans); i++ {
		a, b := spans[i], spans[i+1]
		if wall >= b.start+int64(a.offset) && wall < b.start+int64(b.offset) {
			z.hint = a.offset
			return wall - int64(a.offset)
		}
	}
	z.hint = offP
	return wall - int64(offP)
}

// preferDST is mktime's answer to a tm_isdst that the found instant sec of
// wall does not have: the wall time read with the offset of a neighbouring
// span that has the requested kind, if there is one.
func (z *zoneClock) preferDST(wall, sec int64, dst bool) int64 {
	_, start, end := z.period(sec)
	if z.dst == dst {
		return sec
	}
	var neighbours [2]int64
	n := 0
	if start != math.MinInt64 {
		neighbours[n] = start - 1
		n++
	}
	if end != math.MaxInt64 {
		neighbours[n] = end
		n++
	}
	for _, at := range neighbours[:n] {
		off, _, _ := z.period(at)
		if z.dst == dst {
			z.hint = off
			return wall - int64(off)
		}
	}
	return sec
}

// endOfMonth is find_end_of_month: the day that is day-1 days before the
// last of c's month, or -1 when that is not in the month.
func (z *zoneClock) endOfMonth(c tm, day int) int {
	t := c
	t.mon++
	t.mday = 1 - day
	if _, ok := z.mktime(&t); !ok || t.mon != c.mon {
		return -1
	}
	return t.mday
}

// withinBounds is tm_within_bounds: 1 when t is a valid wall time, 0 when
// mktime had to normalize it (t then holds the normalized time, with the
// fields below the first changed one reset as systemd does), negative when
// it is out of range or would go backwards.
func (z *zoneClock) withinBounds(t *tm) int {
	if t.year > maxYear {
		return -1
	}
	n := *t
	if _, ok := z.mktime(&n); !ok {
		return -1
	}
	var cmp int
	switch {
	case n.year != t.year:
		cmp = compare(n.year, t.year)
		n.mon = 0
	case n.mon != t.mon:
		cmp = compare(n.mon, t.mon)
		n.mday = 1
	case n.mday != t.mday:
		cmp = compare(n.mday, t.mday)
		n.hour = 0
	case n.hour != t.hour:
		cmp = compare(n.hour, t.hour)
		n.min = 0
	case n.min != t.min:
		cmp = compare(n.min, t.min)
		n.sec = 0
	default:
		cmp = compare(n.sec, t.sec)
	}
	if cmp < 0 {
		return -2
	}
	if cmp > 0 {
		*t = n
		return 0
	}
	return 1
}

func compare(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// wallSeconds counts the seconds of a (possibly denormalized) wall time
// from 1970-01-01 00:00:00, carrying out-of-range fields as mktime does.
func wallSeconds(t tm) int64 {
	year, mon := t.year, t.mon
	year += floorDiv(mon, 12)
	mon = mon - floorDiv(mon, 12)*12
	days := daysFromCivil(year, mon+1, 1) + int64(t.mday-1)
	return days*86400 + int64(t.hour)*3600 + int64(t.min)*60 + int64(t.sec)
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// civil is the wall time of a count of seconds since 1970-01-01 00:00:00.
func civil(wall int64) tm {
	days := wall / 86400
	rem := wall % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civilFromDays(days)
	return tm{year: y, mon: m - 1, mday: d, hour: int(rem / 3600), min: int(rem % 3600 / 60), sec: int(rem % 60)}
}

// daysFromCivil and civilFromDays convert between proleptic Gregorian
// dates and days since 1970-01-01 (H. Hinnant's algorithms).
func daysFromCivil(y, m, d int) int64 {
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := yy / 400
	if yy < 0 && yy%400 != 0 {
		era--
	}
	yoe := yy - era*400
	mm := int64(m)
	var doy int64
	if mm > 2 {
		doy = (153*(mm-3)+2)/5 + int64(d) - 1
	} else {
		doy = (153*(mm+9)+2)/5 + int64(d) - 1
	}
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civilFromDays(z int64) (int, int, int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}
