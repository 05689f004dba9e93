package pid1

import (
	"bufio"
	"io"
	"os"
	"sync"
	"time"

	"vigil/units/api"
)

// logStore keeps unit log lines in memory for status and logs.
type logStore struct {
	mu        sync.Mutex
	lines     []api.LogLine
	max       int
	console   io.Writer
	followers map[chan api.LogLine]string
}

func openLogStore(dir string, console io.Writer) (*logStore, error) {
	return &logStore{max: 100000, console: console, followers: map[chan api.LogLine]string{}}, nil
}

func (s *logStore) add(l api.LogLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, l)
	if len(s.lines) > s.max {
		s.lines = append([]api.LogLine(nil), s.lines[len(s.lines)-s.max/2:]...)
	}
	for ch, unit := range s.followers {
		if unit == "" || unit == l.Unit {
			select {
			case ch <- l:
			default:
			}
		}
	}
}

func (s *logStore) Append(unit, stream, text string) {
	s.add(api.LogLine{Time: time.Now(), Unit: unit, Stream: stream, Text: text})
}

func (s *logStore) Capture(unit string, pid int, stream string, r *os.File, echo bool) {
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 64*1024)
		for sc.Scan() {
			s.add(api.LogLine{Time: time.Now(), Unit: unit, Stream: stream, PID: pid, Text: sc.Text()})
			if echo && s.console != nil {
				io.WriteString(s.console, unit+": "+sc.Text()+"\n")
			}
		}
	}()
}

func (s *logStore) Tail(unit string, n int, since time.Time) []api.LogLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.LogLine
	for i := len(s.lines) - 1; i >= 0 && len(out) < n; i-- {
		l := s.lines[i]
		if (unit == "" || l.Unit == unit) && !l.Time.Before(since) {
			out = append(out, l)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func (s *logStore) Follow(unit string) (<-chan api.LogLine, func()) {
	ch := make(chan api.LogLine, 256)
	s.mu.Lock()
	s.followers[ch] = unit
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.followers, ch)
		s.mu.Unlock()
	}
}

func (s *logStore) Close() {}
