package observer

import (
	"container/heap"
	"time"
)

type timerEntry struct {
	id    TimerID
	due   time.Duration
	fn    func()
	index int
}

type timerHeap []*timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].id < h[j].id
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	e := x.(*timerEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// AfterFunc runs fn on the loop once d has passed on the loop's monotonic
// clock. Call it on the loop goroutine (or before Run).
func (l *Loop) AfterFunc(d time.Duration, fn func()) TimerID {
	return l.At(l.Now()+d, fn)
}

// At runs fn on the loop when the loop's clock reaches due.
func (l *Loop) At(due time.Duration, fn func()) TimerID {
	l.nextTimer++
	e := &timerEntry{id: l.nextTimer, due: due, fn: fn}
	heap.Push(&l.timers, e)
	l.timerByID[e.id] = e
	return e.id
}

// StopTimer cancels a timer; stopping a fired or unknown timer is harmless.
func (l *Loop) StopTimer(id TimerID) {
	e, ok := l.timerByID[id]
	if !ok {
		return
	}
	delete(l.timerByID, id)
	heap.Remove(&l.timers, e.index)
}

// PendingTimers reports how many timers wait.
func (l *Loop) PendingTimers() int { return len(l.timers) }

func (l *Loop) nextDue() (time.Duration, bool) {
	if len(l.timers) == 0 {
		return 0, false
	}
	return l.timers[0].due, true
}

func (l *Loop) runTimers() {
	now := l.Now()
	for len(l.timers) > 0 && l.timers[0].due <= now {
		e := heap.Pop(&l.timers).(*timerEntry)
		delete(l.timerByID, e.id)
		l.guard("timer", "", nil, e.fn)
	}
}
