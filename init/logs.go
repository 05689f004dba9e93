package pid1

import (
	"io"
	"os"
	"time"

	"vigil/units/api"
	"vigil/units/logs"
)

// logStore adapts the per-unit log store to what the manager consumes.
type logStore struct {
	store   *logs.Store
	console io.Writer
}

func openLogStore(dir string, console io.Writer) (*logStore, error) {
	var warn error
	st, err := logs.Open(dir, logs.Options{Warn: func(err error) { warn = err }})
	if err != nil {
		return nil, err
	}
	return &logStore{store: st, console: console}, warn
}

func (s *logStore) Append(unit, stream, text string) { s.store.Append(unit, stream, text) }

func (s *logStore) Capture(unit string, pid int, stream string, r *os.File, echo bool) {
	s.store.Capture(unit, pid, stream, r)
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
