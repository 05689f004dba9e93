package observer

import (
	"context"
	"sync"
)

// Queue carries matched events to a guest that reads them on its own
// goroutine (a socket guest). The loop never waits for the reader: when the
// queue is full, the newest event is dropped and counted.
type Queue struct {
	limit int

	mu      sync.Mutex
	events  []*Event
	dropped uint64
	closed  bool
	ready   chan struct{}
}

// NewQueue makes a queue holding at most limit events.
func NewQueue(limit int) *Queue {
	if limit <= 0 {
		limit = 256
	}
	return &Queue{limit: limit, ready: make(chan struct{}, 1)}
}

func (q *Queue) deliver(ev *Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if len(q.events) >= q.limit {
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.events = append(q.events, ev)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Next waits for the next event. It returns nil when ctx ends or the queue
// is closed and empty.
func (q *Queue) Next(ctx context.Context) *Event {
	for {
		q.mu.Lock()
		if len(q.events) > 0 {
			ev := q.events[0]
			q.events[0] = nil
			q.events = q.events[1:]
			q.mu.Unlock()
			return ev
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil
		}
	}
}

// Dropped counts events lost because the reader was slow.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// Close wakes the reader; later deliveries are discarded.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
