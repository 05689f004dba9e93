package calendar

import (
	"strconv"
	"strings"
)

var weekdayAbbrev = [7]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// String gives the normalized form, exactly as systemd-analyze calendar
// prints it ("Mon..Fri *-*-* 04:00:00 Europe/Berlin").
func (s *Spec) String() string {
	var b strings.Builder
	b.Grow(40)
	if s.weekdays != 0 {
		formatWeekdays(&b, s.weekdays)
		b.WriteByte(' ')
	}
	formatChain(&b, 4, s.year, false)
	b.WriteByte('-')
	formatChain(&b, 2, s.month, false)
	if s.endOfMonth {
		b.WriteByte('~')
	} else {
		b.WriteByte('-')
	}
	formatChain(&b, 2, s.day, false)
	b.WriteByte(' ')
	formatChain(&b, 2, s.hour, false)
	b.WriteByte(':')
	formatChain(&b, 2, s.minute, false)
	b.WriteByte(':')
	formatChain(&b, 2, s.second, true)
	switch {
	case s.utc:
		b.WriteString(" UTC")
	case s.zoneName != "":
		b.WriteByte(' ')
		b.WriteString(s.zoneName)
	}
	return b.String()
}

// formatWeekdays writes runs of three or more days as ranges ("Mon..Wed")
// and shorter runs as lists ("Sat,Sun").
func formatWeekdays(b *strings.Builder, bits uint8) {
	runStart := -1
	needComma := false
	closeRun := func(x int) {
		if x > runStart+1 {
			if x > runStart+2 {
				b.WriteString("..")
			} else {
				b.WriteByte(',')
			}
			b.WriteString(weekdayAbbrev[x-1])
		}
	}
	for x := 0; x < 7; x++ {
		if bits&(1<<x) != 0 {
			if runStart < 0 {
				if needComma {
					b.WriteByte(',')
				}
				needComma = true
				b.WriteString(weekdayAbbrev[x])
				runStart = x
			}
		} else if runStart >= 0 {
			closeRun(x)
			runStart = -1
		}
	}
	if runStart >= 0 {
		closeRun(7)
	}
}

// formatChain writes a field; seconds (usec) are in microseconds and
// print their fraction when they have one.
func formatChain(b *strings.Builder, width int, chain []component, usec bool) {
	if chainIsStar(chain, usec) {
		b.WriteByte('*')
		return
	}
	d := int32(1)
	if usec {
		d = usecPerSec
	}
	for i, c := range chain {
		if i > 0 {
			b.WriteByte(',')
		}
		writePadded(b, c.start/d, width)
		writeFraction(b, c.start%d)
		if c.stop > 0 {
			b.WriteString("..")
			writePadded(b, c.stop/d, width)
		}
		writeFraction(b, c.stop%d)
		if c.repeat > 0 && !(c.stop > 0 && c.repeat == d) {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(int(c.repeat / d)))
		}
		writeFraction(b, c.repeat%d)
	}
}

// chainIsStar: an empty chain, or a seconds chain with one component that
// covers every second, prints as "*".
func chainIsStar(chain []component, usec bool) bool {
	if chain == nil {
		return true
	}
	if usec {
		for _, c := range chain {
			if c.start == 0 && c.stop < 0 && c.repeat == usecPerSec {
				return true
			}
		}
	}
	return false
}

func writePadded(b *strings.Builder, v int32, width int) {
	s := strconv.Itoa(int(v))
	for i := len(s); i < width; i++ {
		b.WriteByte('0')
	}
	b.WriteString(s)
}

// writeFraction writes ".%06d" for a positive microsecond remainder.
func writeFraction(b *strings.Builder, us int32) {
	if us <= 0 {
		return
	}
	b.WriteByte('.')
	writePadded(b, us, 6)
}
