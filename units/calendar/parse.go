package calendar

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Limits of systemd's calendar language.
const (
	minYear = 1970
	maxYear = 2199
	// maxComponents bounds a comma list in one field (systemd:
	// CALENDARSPEC_COMPONENTS_MAX + 1).
	maxComponents = 241
	usecPerSec    = 1_000_000
	allWeekdays   = 127
)

// component is one element of a field's comma list: start, or
// start..stop, each optionally with /repeat. Seconds are counted in
// microseconds. stop < 0 means no upper end; repeat 0 means no repetition.
type component struct {
	start, stop, repeat int32
}

// Spec is a parsed calendar event. The zero Spec is not useful; get one
// from Parse. A Spec is immutable and safe for concurrent use.
type Spec struct {
	// Each field is a list of components; nil matches every value ("*").
	year, month, day, hour, minute []component
	second                         []component // microseconds; never nil

	weekdays   uint8 // bit 0 is Monday … bit 6 Sunday; 0 means every day
	endOfMonth bool  // day counts back from the month's end ("~")
	utc        bool
	// dst is -1, or 0/1 when the expression ended in the local zone's
	// standard/daylight abbreviation (systemd's tzname[] match).
	dst      int8
	zoneName string         // the zone or abbreviation, printed by String
	loc      *time.Location // the named zone's rules; nil when none was named
}

// ParseError says where an expression stopped making sense and why.
type ParseError struct {
	Expr   string
	Offset int // byte offset into Expr
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("calendar expression %q, at offset %d: %s", e.Expr, e.Offset, e.Reason)
}

// Parse parses a calendar event expression in systemd's language. A
// trailing word that names a zone under /usr/share/zoneinfo ("Europe/Berlin")
// or " UTC" selects the zone; without one, Next works in the location of
// the time it is given. A trailing abbreviation of the machine's local zone
// ("CET", "CEST") pins standard or daylight time, as systemd does.
func Parse(expr string) (*Spec, error) {
	return parse(expr, time.Local)
}

// parse is Parse with the machine's local zone given explicitly (systemd
// reads tzname[] from the environment; tests pick the zone).
func parse(expr string, local *time.Location) (*Spec, error) {
	s := &Spec{dst: -1}
	body := expr
	if hasSuffixFold(body, " UTC") {
		s.utc = true
		body = body[:len(body)-4]
	} else if name, dst, ok := localAbbreviation(body, local); ok {
		body = body[:len(body)-len(name)-1]
		s.dst = int8(dst)
		s.zoneName = name
	} else if i := strings.LastIndexByte(body, ' '); i >= 0 {
		if loc, ok := loadZone(body[i+1:]); ok {
			s.zoneName = body[i+1:]
			s.loc = loc
			body = body[:i]
		}
	}
	p := &parser{expr: expr, s: body}
	if body == "" {
		return nil, p.fail(0, "empty expression")
	}
	if !p.shorthand(s) {
		if err := p.parseWeekdays(s); err != nil {
			return nil, err
		}
		done, err := p.parseDate(s)
		if err != nil {
			return nil, err
		}
		if !done {
			if err := p.parseTime(s); err != nil {
				return nil, err
			}
		}
		if p.pos < len(p.s) {
			return nil, p.fail(p.pos, "unexpected %q", p.rest())
		}
	}
	if err := p.normalize(s); err != nil {
		return nil, err
	}
	return s, nil
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// parser walks the expression (with any zone cut off the end, so offsets
// are those of the original expression).
type parser struct {
	expr string
	s    string
	pos  int
	// where each field's components started, for validation errors
	yearPos, monthPos, dayPos, hourPos, minutePos, secondPos []int
}

func (p *parser) fail(at int, format string, args ...any) error {
	return &ParseError{Expr: p.expr, Offset: at, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) peek(i int) byte {
	if p.pos+i < len(p.s) {
		return p.s[p.pos+i]
	}
	return 0
}

func (p *parser) rest() string {
	r := p.s[p.pos:]
	if len(r) > 16 {
		r = r[:16] + "…"
	}
	return r
}

func (p *parser) skipSpaces() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func constChain(v int32) []component { return []component{{start: v, stop: -1}} }

// shorthand handles "daily" and friends; it reports whether the whole
// expression was one.
func (p *parser) shorthand(s *Spec) bool {
	zero := func() { s.hour, s.minute, s.second = constChain(0), constChain(0), constChain(0) }
	switch strings.ToLower(p.s) {
	case "minutely":
		s.second = constChain(0)
	case "hourly":
		s.minute, s.second = constChain(0), constChain(0)
	case "daily":
		zero()
	case "monthly":
		zero()
		s.day = constChain(1)
	case "annually", "yearly", "anually":
		zero()
		s.month, s.day = constChain(1), constChain(1)
	case "weekly":
		zero()
		s.weekdays = 1
	case "quarterly":
		zero()
		s.month = []component{{1, -1, 0}, {4, -1, 0}, {7, -1, 0}, {10, -1, 0}}
		s.day = constChain(1)
	case "biannually", "bi-annually", "semiannually", "semi-annually":
		zero()
		s.month = []component{{1, -1, 0}, {7, -1, 0}}
		s.day = constChain(1)
	default:
		return false
	}
	p.yearPos, p.monthPos, p.dayPos = nil, make([]int, len(s.month)), make([]int, len(s.day))
	p.hourPos, p.minutePos, p.secondPos = make([]int, len(s.hour)), make([]int, len(s.minute)), make([]int, len(s.second))
	p.pos = len(p.s)
	return true
}

var weekdayNames = [...]struct {
	name string
	nr   int
}{
	{"Monday", 0}, {"Mon", 0}, {"Tuesday", 1}, {"Tue", 1}, {"Wednesday", 2}, {"Wed", 2},
	{"Thursday", 3}, {"Thu", 3}, {"Friday", 4}, {"Fri", 4}, {"Saturday", 5}, {"Sat", 5},
	{"Sunday", 6}, {"Sun", 6},
}

// parseWeekdays reads an optional leading weekday list ("Mon..Fri,Sun ").
func (p *parser) parseWeekdays(s *Spec) error {
	rangeFrom := -1
	first := true
	for {
		found := -1
		for _, d := range weekdayNames {
			if len(p.s)-p.pos < len(d.name) || !strings.EqualFold(p.s[p.pos:p.pos+len(d.name)], d.name) {
				continue
			}
			switch p.peek(len(d.name)) {
			case 0, '-', '.', ',', ' ':
			default:
				return p.fail(p.pos+len(d.name), "weekday %q followed by %q (expected ',', '..' or a space)", p.s[p.pos:p.pos+len(d.name)], p.peek(len(d.name)))
			}
			s.weekdays |= 1 << d.nr
			if rangeFrom >= 0 {
				if rangeFrom > d.nr {
					return p.fail(p.pos, "weekday range goes backwards (a range runs from Monday towards Sunday)")
				}
				for j := rangeFrom + 1; j < d.nr; j++ {
					s.weekdays |= 1 << j
				}
			}
			p.pos += len(d.name)
			found = d.nr
			break
		}
		if found < 0 {
			if first {
				return nil
			}
			return p.fail(p.pos, "expected a weekday name, found %q", p.rest())
		}
		switch p.peek(0) {
		case 0:
			return nil
		case ' ':
			p.skipSpaces()
			return nil
		case '.':
			if rangeFrom >= 0 {
				return p.fail(p.pos, "a weekday range cannot continue into another range")
			}
			if p.peek(1) != '.' {
				return p.fail(p.pos, "expected '..' in a weekday range")
			}
			rangeFrom = found
			p.pos += 2
		case '-': // the old spelling of ".."
			if rangeFrom >= 0 {
				return p.fail(p.pos, "a weekday range cannot continue into another range")
			}
			rangeFrom = found
			p.pos++
		case ',':
			rangeFrom = -1
			p.pos++
		}
		if c := p.peek(0); c == 0 || c == ' ' {
			if rangeFrom >= 0 {
				return p.fail(p.pos, "weekday range without an end")
			}
			p.skipSpaces()
			return nil
		}
		first = false
	}
}

// parseDate reads "@EPOCH", "Y-M-D", "M-D" (with "~" for days from the
// month's end) or nothing. done says the expression was "@EPOCH", which
// fixes the time too.
func (p *parser) parseDate(s *Spec) (done bool, err error) {
	if p.pos == len(p.s) {
		return false, nil
	}
	if p.peek(0) == '@' {
		return true, p.parseEpoch(s)
	}
	start := p.pos
	first, firstPos, err := p.parseChain(false)
	if err != nil {
		return false, err
	}
	if c := p.peek(0); c == 0 || c == ':' {
		// A time, not a date: let parseTime read it again.
		p.pos = start
		return false, nil
	}
	sep := func() error {
		switch p.peek(0) {
		case '~':
			s.endOfMonth = true
		case '-':
		default:
			return p.fail(p.pos, "expected '-' or '~' in a date, found %q", p.rest())
		}
		p.pos++
		return nil
	}
	if err := sep(); err != nil {
		return false, err
	}
	second, secondPos, err := p.parseChain(false)
	if err != nil {
		return false, err
	}
	if c := p.peek(0); c == 0 || c == ' ' {
		s.month, p.monthPos = first, firstPos
		s.day, p.dayPos = second, secondPos
		p.skipSpaces()
		return false, nil
	}
	if s.endOfMonth {
		return false, p.fail(p.pos, "'~' may only stand between month and day")
	}
	if err := sep(); err != nil {
		return false, err
	}
	third, thirdPos, err := p.parseChain(false)
	if err != nil {
		return false, err
	}
	if c := p.peek(0); c != 0 && c != ' ' {
		return false, p.fail(p.pos, "expected a space after the date, found %q", p.rest())
	}
	s.year, p.yearPos = first, firstPos
	s.month, p.monthPos = second, secondPos
	s.day, p.dayPos = third, thirdPos
	p.skipSpaces()
	return false, nil
}

// parseEpoch reads "@SECONDS" (strtoul's syntax: optional space and sign).
func (p *parser) parseEpoch(s *Spec) error {
	p.pos++
	at := p.pos
	for p.pos < len(p.s) && strings.IndexByte(" \t\n\v\f\r", p.s[p.pos]) >= 0 {
		p.pos++
	}
	negative := false
	if c := p.peek(0); c == '+' || c == '-' {
		negative = c == '-'
		p.pos++
	}
	digits := p.pos
	var v uint64
	for p.pos < len(p.s) && isDigit(p.s[p.pos]) {
		d := uint64(p.s[p.pos] - '0')
		if v > (math.MaxUint64-d)/10 {
			return p.fail(at, "number out of range")
		}
		v = v*10 + d
		p.pos++
	}
	if p.pos == digits {
		return p.fail(at, "expected seconds since the epoch after '@'")
	}
	if negative && v != 0 {
		return p.fail(at, "time before 1970")
	}
	if v > uint64(maxYear+1-1970)*366*86400 {
		return p.fail(at, "time after %d", maxYear)
	}
	t := time.Unix(int64(v), 0).UTC()
	s.utc = true
	s.year = constChain(int32(t.Year()))
	s.month = constChain(int32(t.Month()))
	s.day = constChain(int32(t.Day()))
	s.hour = constChain(int32(t.Hour()))
	s.minute = constChain(int32(t.Minute()))
	s.second = constChain(int32(t.Second()) * usecPerSec)
	p.yearPos, p.monthPos, p.dayPos = []int{at}, []int{at}, []int{at}
	p.hourPos, p.minutePos, p.secondPos = []int{at}, []int{at}, []int{at}
	return nil
}

// parseTime reads "H:M" or "H:M:S"; nothing means 00:00:00.
func (p *parser) parseTime(s *Spec) error {
	if p.pos == len(p.s) {
		s.hour, s.minute, s.second = constChain(0), constChain(0), constChain(0)
		p.hourPos, p.minutePos, p.secondPos = []int{p.pos}, []int{p.pos}, []int{p.pos}
		return nil
	}
	var err error
	if s.hour, p.hourPos, err = p.parseChain(false); err != nil {
		return err
	}
	if p.peek(0) != ':' {
		return p.fail(p.pos, "expected ':' after the hour, found %q", p.rest())
	}
	p.pos++
	if s.minute, p.minutePos, err = p.parseChain(false); err != nil {
		return err
	}
	if p.pos == len(p.s) {
		s.second, p.secondPos = constChain(0), []int{p.pos}
		return nil
	}
	if p.peek(0) != ':' {
		return p.fail(p.pos, "expected ':' after the minute, found %q", p.rest())
	}
	p.pos++
	if s.second, p.secondPos, err = p.parseChain(true); err != nil {
		return err
	}
	if p.pos != len(p.s) {
		return p.fail(p.pos, "unexpected %q after the seconds", p.rest())
	}
	return nil
}

// parseChain reads "*" or a comma list of components. For seconds (usec)
// values may have fractions and "*" means every whole second.
func (p *parser) parseChain(usec bool) ([]component, []int, error) {
	if p.peek(0) == '*' {
		at := p.pos
		p.pos++
		if usec {
			return []component{{start: 0, stop: -1, repeat: usecPerSec}}, []int{at}, nil
		}
		return nil, nil, nil
	}
	var chain []component
	var positions []int
	for {
		if len(chain) >= maxComponents {
			return nil, nil, p.fail(p.pos, "more than %d values in one field", maxComponents)
		}
		at := p.pos
		c := component{stop: -1}
		v, err := p.parseDecimal(usec)
		if err != nil {
			return nil, nil, err
		}
		c.start = v
		if p.peek(0) == '.' && p.peek(1) == '.' {
			p.pos += 2
			if c.stop, err = p.parseDecimal(usec); err != nil {
				return nil, nil, err
			}
			c.repeat = 1
			if usec {
				c.repeat = usecPerSec
			}
		}
		if p.peek(0) == '/' {
			p.pos++
			if c.repeat, err = p.parseDecimal(usec); err != nil {
				return nil, nil, err
			}
			if c.repeat == 0 {
				return nil, nil, p.fail(p.pos-1, "repetition of 0")
			}
		} else {
			if int64(c.start)+int64(c.repeat) > math.MaxInt32 {
				return nil, nil, p.fail(at, "value out of range")
			}
			// The default step of a seconds range is a whole second:
			// "1..1.5" could never repeat.
			if usec && c.stop >= 0 && c.start+c.repeat > c.stop {
				return nil, nil, p.fail(at, "seconds range shorter than one second needs an explicit /repetition")
			}
		}
		switch p.peek(0) {
		case 0, ' ', ',', '-', '~', ':':
		default:
			return nil, nil, p.fail(p.pos, "unexpected %q in a number list", p.rest())
		}
		chain = append(chain, c)
		positions = append(positions, at)
		if p.peek(0) != ',' {
			return chain, positions, nil
		}
		p.pos++
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseDecimal reads a non-negative integer; for seconds also a fraction
// (up to six digits kept, the seventh rounds).
func (p *parser) parseDecimal(usec bool) (int32, error) {
	at := p.pos
	if !isDigit(p.peek(0)) {
		if p.pos == len(p.s) {
			return 0, p.fail(at, "expected a number, found the end")
		}
		return 0, p.fail(at, "expected a number, found %q", p.rest())
	}
	var v uint64
	for p.pos < len(p.s) && isDigit(p.s[p.pos]) {
		v = v*10 + uint64(p.s[p.pos]-'0')
		if v > math.MaxInt32 {
			return 0, p.fail(at, "number out of range")
		}
		p.pos++
	}
	if usec {
		v *= usecPerSec
		if p.peek(0) == '.' && p.peek(1) != '.' {
			p.pos++
			if !isDigit(p.peek(0)) {
				return 0, p.fail(p.pos, "expected digits after the decimal point")
			}
			var frac uint64
			n := 0
			for ; n < 6 && isDigit(p.peek(0)); n++ {
				frac = frac*10 + uint64(p.s[p.pos]-'0')
				p.pos++
			}
			for ; n < 6; n++ {
				frac *= 10
			}
			if c := p.peek(0); c >= '5' && c <= '9' {
				frac++
			}
			for isDigit(p.peek(0)) {
				p.pos++
			}
			v += frac
		}
		if v > math.MaxInt32 {
			return 0, p.fail(at, "number out of range")
		}
	}
	return int32(v), nil
}

// normalize brings s into systemd's canonical form and checks the ranges.
func (p *parser) normalize(s *Spec) error {
	if s.weekdays >= allWeekdays {
		s.weekdays = 0
	}
	if s.endOfMonth && s.day == nil {
		s.endOfMonth = false
	}
	for i := range s.year {
		c := &s.year[i]
		c.start = fixYear(c.start)
		c.stop = fixYear(c.stop)
	}
	fields := []struct {
		chain    *[]component
		pos      []int
		name     string
		from, to int32
		eom      bool
		usec     bool
	}{
		{&s.year, p.yearPos, "year", minYear, maxYear, false, false},
		{&s.month, p.monthPos, "month", 1, 12, false, false},
		{&s.day, p.dayPos, "day", 1, 31, s.endOfMonth, false},
		{&s.hour, p.hourPos, "hour", 0, 23, false, false},
		{&s.minute, p.minutePos, "minute", 0, 59, false, false},
		{&s.second, p.secondPos, "second", 0, 60*usecPerSec - 1, false, true},
	}
	for _, f := range fields {
		chain := *f.chain
		for i := range chain {
			normalizeComponent(&chain[i])
		}
		pos := f.pos
		if len(pos) != len(chain) {
			pos = make([]int, len(chain))
		}
		chain, pos = sortChain(chain, pos)
		to := f.to
		for i, c := range chain {
			if f.eom {
				// systemd shortens the range by three days for every
				// further element of a "~" list (chain_valid recurses
				// with its own "to -= 3"); we refuse what it refuses.
				to -= 3
			}
			if reason := checkComponent(c, f.from, to, f.eom, f.usec); reason != "" {
				return p.fail(pos[i], "%s %s", f.name, reason)
			}
		}
		*f.chain = chain
	}
	return nil
}

// fixYear maps two-digit years: 12 → 2012, 89 → 1989.
func fixYear(y int32) int32 {
	switch {
	case y >= 0 && y < 70:
		return y + 2000
	case y >= 70 && y < 100:
		return y + 1900
	}
	return y
}

// normalizeComponent trims a range to a whole number of repetitions and
// turns ranges that cannot repeat into single values.
func normalizeComponent(c *component) {
	start, stop, repeat := int64(c.start), int64(c.stop), int64(c.repeat)
	if stop > start && repeat > 0 {
		stop -= (stop - start) % repeat
	}
	if (stop > start && repeat > 0 && start+repeat > stop) || start == stop {
		repeat, stop = 0, -1
	}
	c.stop, c.repeat = int32(stop), int32(repeat)
}

// checkComponent says what is wrong with c in a field of values from..to
// ("" when nothing). With eom the day counts back from the month's end
// (the caller has already shortened to).
func checkComponent(c component, from, to int32, eom, usec bool) string {
	v := func(x int32) string { return formatValue(x, usec) }
	start, stop, repeat := int64(c.start), int64(c.stop), int64(c.repeat)
	lo, hi := int64(from), int64(to)
	if start < lo || start > hi {
		return fmt.Sprintf("%s out of range %s..%s", v(c.start), v(from), v(to))
	}
	if repeat > hi-lo {
		return fmt.Sprintf("repetition %s longer than the range %s..%s", v(c.repeat), v(from), v(to))
	}
	if stop >= 0 {
		if stop < lo || stop > hi {
			return fmt.Sprintf("range end %s out of range %s..%s", v(c.stop), v(from), v(to))
		}
		if start+repeat > stop {
			return fmt.Sprintf("range %s..%s is empty", v(c.start), v(c.stop))
		}
		return ""
	}
	if eom && start-repeat < lo {
		return fmt.Sprintf("~%s/%s would repeat before the month's start", v(c.start), v(c.repeat))
	}
	if !eom && start+repeat > hi {
		return fmt.Sprintf("%s/%s never repeats (the next would be past %s)", v(c.start), v(c.repeat), v(to))
	}
	return ""
}

// formatValue prints v for an error message; seconds are in microseconds.
func formatValue(v int32, usec bool) string {
	if usec {
		if v%usecPerSec == 0 {
			return fmt.Sprint(v / usecPerSec)
		}
		return fmt.Sprintf("%d.%06d", v/usecPerSec, v%usecPerSec)
	}
	return fmt.Sprint(v)
}

// sortChain orders components (and their positions) and drops duplicates.
func sortChain(c []component, pos []int) ([]component, []int) {
	if len(c) <= 1 {
		return c, pos
	}
	order := make([]int, len(c))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := c[order[i]], c[order[j]]
		if a.start != b.start {
			return a.start < b.start
		}
		if a.stop != b.stop {
			return a.stop < b.stop
		}
		return a.repeat < b.repeat
	})
	out := make([]component, 0, len(c))
	outPos := make([]int, 0, len(c))
	for _, i := range order {
		if len(out) > 0 && c[i] == out[len(out)-1] {
			continue
		}
		out = append(out, c[i])
		outPos = append(outPos, pos[i])
	}
	return out[:len(out):len(out)], outPos
}
