package observer

import "sync"

// Source is one producer's hand-over queue into the loop. Post never blocks:
// a bounded source drops and counts what does not fit; an unbounded one
// (limit 0) keeps everything, for events that must never be lost, such as
// process exits.
type Source struct {
	name  string
	loop  *Loop
	limit int

	mu sync.Mutex
	// queue[head:] waits for the loop. The loop takes from the head
	// without shifting the rest down each time (that made a long queue
	// quadratic); Post compacts when the backing array is full.
	queue   []Event
	head    int
	posted  uint64
	dropped uint64
	// keepers are the goroutines that feed this source, run by Keep;
	// retired sums up the stopped ones Keep dropped from the list (a
	// source such as autofs gets a keeper per mount over its lifetime).
	keepers []*Keeper
	retired KeeperStats
	// removed is set by Loop.RemoveSource: Post drops from then on.
	removed bool
}

// NewSource adds a producer. limit bounds its queue; 0 means unbounded.
func (l *Loop) NewSource(name string, limit int) *Source {
	s := &Source{name: name, loop: l, limit: limit}
	l.mu.Lock()
	l.sources = append(append([]*Source(nil), l.sources...), s)
	l.mu.Unlock()
	return s
}

// Name is the source's name, used as Event.Source when the event has none.
func (s *Source) Name() string { return s.name }

// Post queues an event for dispatch. It reports false when the queue was
// full and the event was dropped; a dropped event's Hold is released with
// its Default on the loop, since no observer will ever see it. Safe from
// any goroutine.
func (s *Source) Post(ev Event) bool {
	if ev.Source == "" {
		ev.Source = s.name
	}
	s.mu.Lock()
	if s.removed || s.limit > 0 && len(s.queue)-s.head >= s.limit {
		s.dropped++
		s.mu.Unlock()
		if h := ev.Hold; h != nil && h.Release != nil {
			release, verdict := h.Release, h.Default
			s.loop.Do(func() { release(verdict) })
		}
		return false
	}
	if len(s.queue) == cap(s.queue) && s.head > 0 && s.head >= len(s.queue)/2 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
	s.queue = append(s.queue, ev)
	s.posted++
	s.mu.Unlock()
	s.loop.poke()
	return true
}

// take hands the loop up to max events. They are copied out, because the
// loop gives observers pointers to them that may outlive this turn.
func (s *Source) take(max int) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queue) - s.head
	if n == 0 {
		return nil
	}
	if n > max {
		n = max
	}
	out := make([]Event, n)
	copy(out, s.queue[s.head:s.head+n])
	clear(s.queue[s.head : s.head+n])
	s.head += n
	if s.head == len(s.queue) {
		s.queue = s.queue[:0]
		s.head = 0
	}
	return out
}

// remove marks the source removed and drops what waits in its queue,
// counted as dropped; held events among them are released with their
// Default on the loop, since no observer will see them.
func (s *Source) remove() {
	s.mu.Lock()
	s.removed = true
	waiting := s.queue[s.head:]
	s.dropped += uint64(len(waiting))
	var releases []func()
	for _, ev := range waiting {
		if h := ev.Hold; h != nil && h.Release != nil {
			release, verdict := h.Release, h.Default
			releases = append(releases, func() { release(verdict) })
		}
	}
	s.queue, s.head = nil, 0
	s.mu.Unlock()
	for _, fn := range releases {
		s.loop.Do(fn)
	}
}

// Keep runs fn as one of the goroutines that feed this source, restarted
// as observer.Keep says; its restarts and last error show in the source's
// SourceInfo (`initctl observers`).
func (s *Source) Keep(what string, opts KeepOptions, fn func() error) *Keeper {
	k := Keep(what, opts, fn)
	s.mu.Lock()
	live := s.keepers[:0:0]
	for _, old := range s.keepers {
		st := old.Stats()
		if st.State != KeeperStopped {
			live = append(live, old)
			continue
		}
		s.retired.Restarts += st.Restarts
		if st.LastError != "" && !st.LastFailure.Before(s.retired.LastFailure) {
			s.retired.LastError, s.retired.LastFailure = st.What+": "+st.LastError, st.LastFailure
		}
	}
	s.keepers = append(live, k)
	s.mu.Unlock()
	return k
}

func (s *Source) info() SourceInfo {
	s.mu.Lock()
	info := SourceInfo{Name: s.name, Posted: s.posted, Dropped: s.dropped, Queued: len(s.queue) - s.head}
	keepers := s.keepers
	info.Restarts, info.LastError = s.retired.Restarts, s.retired.LastError
	last := s.retired.LastFailure
	s.mu.Unlock()
	for _, k := range keepers {
		st := k.Stats()
		info.Restarts += st.Restarts
		if st.State == KeeperFailed {
			info.Failed = true
		}
		if st.LastError != "" && !st.LastFailure.Before(last) {
			last = st.LastFailure
			info.LastError = st.What + ": " + st.LastError
		}
	}
	return info
}
