package fanotify

import (
	"time"

	"vigil/observer"
)

// decideInlineLater asks Options.InlineLater about an event of one of our
// own children before its exec. The event is held from the start, with
// the backstop timer, so that a decider that defers and never answers (or
// panics on its worker) costs the accessor Options.Default after the
// backstop, never the reader: the reader goes on with the next event as
// soon as InlineLater returns.
//
// Why deferring is safe here when the loop is not: the accessor is a
// separate process (our vfork children exec'ing our own images are never
// held, see ignoreOwnExecutable), so nothing of ours is stuck in the
// kernel while the answer is computed; the answerer waits on neither the
// reader (which must stay free to exempt the answerer's own opens of the
// file) nor the loop (which may be waiting for this very exec).
func (s *Source) decideInlineLater(ev observer.Event, fd int32) {
	h := &heldEvent{s: s, fd: fd}
	s.heldMu.Lock()
	s.held[h] = struct{}{}
	s.heldMu.Unlock()
	h.timer.Store(time.AfterFunc(s.backstopAfter(), h.expire))
	v, decided := s.inlineLater(&ev, func(v observer.Verdict) { h.release(v) })
	if decided {
		h.release(v)
	}
}

func (s *Source) inlineLater(ev *observer.Event, answer func(observer.Verdict)) (v observer.Verdict, decided bool) {
	defer func() {
		if p := recover(); p != nil {
			s.logf("fanotify: inline decider panicked: %v; taking %s", p, s.opts.Default)
			v, decided = s.opts.Default, true
		}
	}()
	return s.opts.InlineLater(ev, answer)
}
