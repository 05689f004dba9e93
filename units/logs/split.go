package logs

import (
	"bytes"
	"unicode/utf8"
)

// lineSplitter cuts a byte stream into lines of at most max bytes. It keeps
// the unfinished tail of the stream between calls.
type lineSplitter struct {
	max     int
	pending []byte
}

// feed splits p, appended to what is pending, into complete lines and calls
// emit for each; the text passed to emit is only valid during the call.
func (s *lineSplitter) feed(p []byte, emit func([]byte)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.pending = append(s.pending, p...)
			for len(s.pending) > s.max {
				cut := cutPoint(s.pending, s.max)
				emit(s.pending[:cut])
				s.pending = append(s.pending[:0], s.pending[cut:]...)
			}
			return
		}
		line := p[:i]
		p = p[i+1:]
		if len(s.pending) > 0 {
			s.pending = append(s.pending, line...)
			line = s.pending
		}
		for len(line) > s.max {
			cut := cutPoint(line, s.max)
			emit(line[:cut])
			line = line[cut:]
		}
		emit(trimCR(line))
		s.pending = s.pending[:0]
	}
}

// flush emits the partial last line, if any (at EOF).
func (s *lineSplitter) flush(emit func([]byte)) {
	if len(s.pending) > 0 {
		emit(trimCR(s.pending))
		s.pending = s.pending[:0]
	}
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// cutPoint is where to cut a line longer than max: at max, moved back to the
// start of a UTF-8 sequence when one straddles the cut, so valid text stays
// valid. The decision reads only the lead bytes up to b[max], never the bytes
// after it, so a line cut while its tail is still arriving is cut where the
// whole line would be.
func cutPoint(b []byte, max int) int {
	for back := 0; back < utf8.UTFMax && max-back > 0; back++ {
		i := max - back
		if utf8.RuneStart(b[i]) {
			if back == 0 {
				return max
			}
			if sequenceLength(b[i]) > back {
				return i
			}
			return max
		}
	}
	return max
}

// sequenceLength is the length a UTF-8 sequence starting with lead claims.
func sequenceLength(lead byte) int {
	switch {
	case lead >= 0xF0:
		return 4
	case lead >= 0xE0:
		return 3
	case lead >= 0xC0:
		return 2
	}
	return 1
}
