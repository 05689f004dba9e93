package pid1

import (
	"io"
	"os"
	"sync"
	"time"

	"vigil/units/api"
	"vigil/units/logs"
)

// logStore adapts the per-unit log store to what the manager consumes, and
// echoes the output of units with standard-output = "log+console" to the
// console.
type logStore struct {
	store   *logs.Store
	console io.Writer

	mu   sync.Mutex
	echo map[int]int // PIDs whose lines go to the console too, by open pipes
}

func openLogStore(dir string, console io.Writer) (*logStore, error) {
	var warn error
	s := &logStore{console: console, echo: map[int]int{}}
	st, err := logs.Open(dir, logs.Options{Warn: func(err error) { warn = err }, Echo: s.echoLine, FollowBuffer: 4096})
	if err != nil {
		return nil, err
	}
	s.store = st
	return s, warn
}

func (s *logStore) echoLine(l logs.Line) {
	if s.console == nil || l.PID == 0 {
		return
	}
	s.mu.Lock()
	on := s.echo[l.PID] > 0
	s.mu.Unlock()
	if on {
		io.WriteString(s.console, l.Text+"\n")
	}
}

func (s *logStore) Append(unit, stream, text string) { s.store.Append(unit, stream, text) }

func (s *logStore) Capture(unit string, pid int, stream string, r *os.File, echo bool) {
	if !echo {
		s.store.Capture(unit, pid, stream, r)
		return
	}
	s.mu.Lock()
	s.echo[pid]++
	s.mu.Unlock()
	done := s.store.Capture(unit, pid, stream, r)
	go func() {
		<-done
		s.mu.Lock()
		if s.echo[pid]--; s.echo[pid] <= 0 {
			delete(s.echo, pid)
		}
		s.mu.Unlock()
	}()
}

func toAPI(l logs.Line) api.LogLine {
	return api.LogLine{Time: l.Time, Unit: l.Unit, Stream: l.Stream, PID: l.PID, Text: l.Text}
}

func (s *logStore) Tail(unit string, n int, since time.Time) []api.LogLine {
	lines := s.store.Tail(unit, n, since)
	out := make([]api.LogLine, len(lines))
	for i, l := range lines {
		out[i] = toAPI(l)
	}
	return out
}

func (s *logStore) Follow(unit string) (<-chan api.LogLine, func()) {
	in, cancel := s.store.Follow(unit)
	out := make(chan api.LogLine, 64)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case l, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- toAPI(l):
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	stop := func() {
		select {
		case <-done:
		default:
			close(done)
		}
		cancel()
	}
	return out, stop
}

func (s *logStore) Close() { s.store.Close() }
