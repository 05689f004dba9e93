package observer

import (
	"context"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Loop.
type Options struct {
	// Logf receives the loop's own complaints (a guest that panicked, an
	// actor that failed). Nil discards them.
	Logf func(format string, args ...any)
	// EmitQueue bounds the queue of events that guests emit; default 1024.
	EmitQueue int
}

// ObserverID names a registered observer.
type ObserverID uint64

// TimerID names a pending timer.
type TimerID uint64

// Action is one thing an observer's actor does when its filter matches:
// Kind names an actor kind defined with DefineActor ("emit", "verdict" and
// whatever guests such as the supervisor define, e.g. "start").
type Action struct {
	Kind string            `json:"kind"`
	Args map[string]string `json:"args,omitempty"`
}

// ActorFunc carries out an Action for a matched event, on the loop goroutine.
type ActorFunc func(ev *Event, args map[string]string) error

// Observer is a guest's registered interest.
type Observer struct {
	Guest  string
	Name   string
	Filter Filter
	// Actions run, in order, for every matching event.
	Actions []Action
	// Notify is the callback for in-process guests. It runs on the loop
	// goroutine and must not block.
	Notify func(*Event)
	// Queue is the callback for guests outside the loop (socket guests):
	// matching events are delivered to it without blocking; a full queue
	// drops the event and counts the drop against this observer only.
	Queue *Queue
	// Decides makes this observer a judge of held events it matches. It
	// must then Answer within HoldTimeout, or HoldDefault is taken for it.
	Decides     bool
	HoldTimeout time.Duration
	HoldDefault Verdict
}

// ObserverInfo describes a registered observer for listings.
type ObserverInfo struct {
	ID      ObserverID `json:"id"`
	Guest   string     `json:"guest"`
	Name    string     `json:"name"`
	Filter  string     `json:"filter"`
	Decides bool       `json:"decides,omitempty"`
	Matched uint64     `json:"matched"`
	Dropped uint64     `json:"dropped"`
	Overrul uint64     `json:"overruled,omitempty"`
}

// SourceInfo describes a source's traffic.
type SourceInfo struct {
	Name    string `json:"name"`
	Posted  uint64 `json:"posted"`
	Dropped uint64 `json:"dropped"`
	Queued  int    `json:"queued"`
	// Restarts counts how often the source's goroutines were run again
	// after a panic or an error (Source.Keep); LastError is the latest
	// such failure; Failed says one of them gave up for good.
	Restarts  uint64 `json:"restarts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	Failed    bool   `json:"failed,omitempty"`
}

type registered struct {
	id        ObserverID
	obs       Observer
	matched   uint64
	overruled uint64
	// gone is set by Unregister, so a dispatch already walking a snapshot
	// of the observers skips it.
	gone bool
}

// pendingHold is a held event between its dispatch and its release.
type pendingHold struct {
	id      uint64
	ev      *Event
	release func(Verdict)
	// start is the loop time of dispatch; deciders' timeouts and the hold's
	// own deadline count from here.
	start   time.Duration
	waiting map[ObserverID]*registered
	// verdict combines the answers so far (deny wins); decided tells whether
	// anyone answered at all, else the hold's Default applies.
	verdict Verdict
	decided bool
	// forced is set by Release: the source's verdict is final.
	forced bool
	// dispatching is true while observers are still being shown the event:
	// the hold is never released before every matching observer saw it.
	dispatching bool
	timer       TimerID
}

// Loop is the event core. Create it with New, start it with Run.
type Loop struct {
	opts    Options
	start   time.Time
	wake    chan struct{}
	running atomic.Bool

	mu      sync.Mutex // guards the hand-over queues below, nothing else
	sources []*Source
	calls   []func()

	// Owned by the loop goroutine.
	seq       uint64
	nextObs   ObserverID
	observers []*registered
	actors    map[string]ActorFunc
	holds     map[uint64]*pendingHold
	nextHold  uint64
	timers    timerHeap
	timerByID map[TimerID]*timerEntry
	nextTimer TimerID
	emit      *Source
	// current is the observer whose actions run during dispatch, so the
	// verdict actor knows whose answer it gives.
	current *registered
}

// New makes a loop that is not yet running.
func New(opts Options) *Loop {
	if opts.EmitQueue <= 0 {
		opts.EmitQueue = 1024
	}
	l := &Loop{
		opts:      opts,
		start:     time.Now(),
		wake:      make(chan struct{}, 1),
		actors:    map[string]ActorFunc{},
		holds:     map[uint64]*pendingHold{},
		timerByID: map[TimerID]*timerEntry{},
	}
	l.emit = l.NewSource("emit", opts.EmitQueue)
	l.actors["emit"] = l.emitActor
	l.actors["verdict"] = l.verdictActor
	return l
}

func (l *Loop) logf(format string, args ...any) {
	if l.opts.Logf != nil {
		l.opts.Logf(format, args...)
	}
}

// Now is the loop's monotonic clock: the time since New.
func (l *Loop) Now() time.Duration { return time.Since(l.start) }

func (l *Loop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Do hands fn to the loop goroutine. It never blocks. Calls run in the order
// they were handed over; they are not ordered with events: an event posted
// before a Do may be dispatched before or after fn runs.
func (l *Loop) Do(fn func()) {
	l.mu.Lock()
	l.calls = append(l.calls, fn)
	l.mu.Unlock()
	l.poke()
}

// Call runs fn on the loop and waits for it, or for ctx. Never call it from
// the loop goroutine itself.
func (l *Loop) Call(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	l.Do(func() { defer close(done); fn() })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run dispatches until ctx ends and returns ctx's error. Only one Run may be
// active at a time; a second one returns an error at once. State (observers,
// pending holds, timers, queued events) survives the end of Run, so a later
// Run carries on where this one stopped; holds are not released just
// because the loop stopped.
func (l *Loop) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return fmt.Errorf("observer loop: already running")
	}
	defer l.running.Store(false)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.turn()
		var timerC <-chan time.Time
		if next, ok := l.nextDue(); ok {
			d := next - l.Now()
			if d <= 0 {
				continue
			}
			timer.Reset(d)
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.wake:
		case <-timerC:
		}
		if timerC != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// turn does one round of work: pending calls, a batch from every source,
// due timers.
func (l *Loop) turn() {
	const batch = 64
	l.mu.Lock()
	calls := l.calls
	l.calls = nil
	sources := l.sources
	l.mu.Unlock()
	for _, fn := range calls {
		l.guard("call", "", nil, fn)
	}
	more := false
	for _, s := range sources {
		evs := s.take(batch)
		for i := range evs {
			l.dispatch(&evs[i])
		}
		if len(evs) == batch {
			more = true
		}
	}
	l.runTimers()
	if more {
		l.poke()
	}
}

// guard runs guest code so that a panic costs the guest, never the loop.
// The description is passed in pieces and only joined on a panic: building
// it for every call would cost an allocation per observer per event.
func (l *Loop) guard(what, detail string, r *registered, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			who := ""
			if r != nil {
				who = " of " + r.obs.Guest + "/" + r.obs.Name
			}
			l.logf("observer: recovered from panic in %s %s%s: %v\n%s", what, detail, who, p, debug.Stack())
		}
	}()
	fn()
}

// DefineActor makes an actor kind available to observers. Call it on the
// loop goroutine (or before Run).
func (l *Loop) DefineActor(kind string, fn ActorFunc) { l.actors[kind] = fn }

// ActorKinds lists the defined actor kinds.
func (l *Loop) ActorKinds() []string {
	kinds := make([]string, 0, len(l.actors))
	for k := range l.actors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// Register adds an observer; call it on the loop goroutine (or before Run).
func (l *Loop) Register(o Observer) (ObserverID, error) {
	if err := o.Filter.Compile(); err != nil {
		return 0, fmt.Errorf("register %s/%s: %w", o.Guest, o.Name, err)
	}
	for _, a := range o.Actions {
		if _, ok := l.actors[a.Kind]; !ok {
			return 0, fmt.Errorf("register %s/%s: unknown actor kind %q (have %v)", o.Guest, o.Name, a.Kind, l.ActorKinds())
		}
		if err := checkBuiltinAction(a); err != nil {
			return 0, fmt.Errorf("register %s/%s: %w", o.Guest, o.Name, err)
		}
	}
	if o.Decides && o.HoldTimeout <= 0 {
		return 0, fmt.Errorf("register %s/%s: an observer that decides holds needs a hold timeout", o.Guest, o.Name)
	}
	// The loop keeps its own copy of the filter: the caller may reuse its
	// slices, and Compile stored derived state in the terms.
	o.Filter = o.Filter.clone()
	o.Actions = append([]Action(nil), o.Actions...)
	l.nextObs++
	// A fresh slice, never an append into a shared backing array: a
	// dispatch in progress walks the old one.
	l.observers = append(l.observers[:len(l.observers):len(l.observers)], &registered{id: l.nextObs, obs: o})
	return l.nextObs, nil
}

// checkBuiltinAction rejects actions of the built-in kinds that could never
// work, at registration rather than on every event.
func checkBuiltinAction(a Action) error {
	switch a.Kind {
	case "emit":
		if a.Args["kind"] == "" {
			return fmt.Errorf("emit action: needs a kind argument")
		}
	case "verdict":
		v, ok := a.Args["verdict"]
		if !ok {
			return fmt.Errorf("verdict action: needs a verdict argument (allow or deny)")
		}
		if _, err := ParseVerdict(v); err != nil {
			return fmt.Errorf("verdict action: %w", err)
		}
	}
	return nil
}

// Unregister removes an observer; unknown IDs are ignored. Holds waiting on
// it count its HoldDefault as its answer (it is not counted as overruled:
// it left rather than failed to answer).
func (l *Loop) Unregister(id ObserverID) {
	for i, r := range l.observers {
		if r.id == id {
			r.gone = true
			l.observers = append(l.observers[:i:i], l.observers[i+1:]...)
			break
		}
	}
	for _, p := range l.holds {
		if r, ok := p.waiting[id]; ok {
			delete(p.waiting, id)
			l.vote(p, r.obs.HoldDefault)
			l.settle(p)
		}
	}
}

// Observers lists the registered observers in registration order.
func (l *Loop) Observers() []ObserverInfo {
	out := make([]ObserverInfo, 0, len(l.observers))
	for _, r := range l.observers {
		info := ObserverInfo{ID: r.id, Guest: r.obs.Guest, Name: r.obs.Name, Filter: r.obs.Filter.String(),
			Decides: r.obs.Decides, Matched: r.matched, Overrul: r.overruled}
		if r.obs.Queue != nil {
			info.Dropped = r.obs.Queue.Dropped()
		}
		out = append(out, info)
	}
	return out
}

// Sources reports every source's traffic. Safe from any goroutine.
func (l *Loop) Sources() []SourceInfo {
	l.mu.Lock()
	sources := l.sources
	l.mu.Unlock()
	out := make([]SourceInfo, 0, len(sources))
	for _, s := range sources {
		out = append(out, s.info())
	}
	return out
}

// RemoveSource takes a source out of the loop, for producers that come
// and go (a watcher per start of a unit), so they do not pile up in the
// loop's turns and in Sources. Events still queued are dropped and
// counted; held ones are released with their Default. A Post after
// removal is dropped the same way. Safe from any goroutine; removing a
// source twice does nothing.
func (l *Loop) RemoveSource(s *Source) {
	if s == nil || s.loop != l {
		return
	}
	l.mu.Lock()
	for i, x := range l.sources {
		if x == s {
			// A fresh slice: a turn in progress walks the old one.
			l.sources = append(l.sources[:i:i], l.sources[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	s.remove()
}

// Emit queues an event as if a source had posted it; guests use it to
// raise their own events. It does not block; it reports false on overflow.
func (l *Loop) Emit(ev Event) bool { return l.emit.Post(ev) }

func (l *Loop) dispatch(ev *Event) {
	l.seq++
	ev.Seq = l.seq
	now := l.Now()
	if ev.Mono == 0 {
		ev.Mono = now
	}
	if ev.Wall.IsZero() {
		ev.Wall = time.Now()
	}
	var p *pendingHold
	if ev.Hold != nil {
		l.nextHold++
		ev.Hold.ID = l.nextHold
		p = &pendingHold{id: l.nextHold, ev: ev, release: ev.Hold.Release, start: now, dispatching: true}
		// Pending from the start, so a decider may Answer from its own
		// callback; it is released only after every observer saw it.
		l.holds[p.id] = p
	}
	// Observers may register or unregister others from their callbacks:
	// walk a snapshot, skipping those unregistered meanwhile.
	snapshot := l.observers
	for _, r := range snapshot {
		if r.gone || !r.obs.Filter.Match(ev) {
			continue
		}
		r.matched++
		if p != nil && r.obs.Decides && !p.forced {
			if p.waiting == nil {
				p.waiting = map[ObserverID]*registered{}
			}
			p.waiting[r.id] = r
		}
		l.current = r
		for _, a := range r.obs.Actions {
			fn := l.actors[a.Kind]
			l.guard("actor", a.Kind, r, func() {
				if err := fn(ev, a.Args); err != nil {
					l.logf("observer: %s/%s: %s on event %d: %v", r.obs.Guest, r.obs.Name, a.Kind, ev.Seq, err)
				}
			})
		}
		l.current = nil
		if r.obs.Notify != nil {
			l.guard("callback", "", r, func() { r.obs.Notify(ev) })
		}
		if r.obs.Queue != nil {
			r.obs.Queue.deliver(ev)
		}
	}
	if p == nil {
		return
	}
	p.dispatching = false
	if _, pending := l.holds[p.id]; !pending {
		return
	}
	if len(p.waiting) == 0 {
		l.conclude(p)
		return
	}
	l.scheduleExpiry(p)
}

// scheduleExpiry sets the hold's timer to the earliest moment a waiting
// decider's timeout, or the hold's own deadline, passes.
func (l *Loop) scheduleExpiry(p *pendingHold) {
	due := time.Duration(-1)
	for _, r := range p.waiting {
		if d := p.start + r.obs.HoldTimeout; due < 0 || d < due {
			due = d
		}
	}
	if dl := p.ev.Hold.Deadline; dl > 0 && p.start+dl < due {
		due = p.start + dl
	}
	l.StopTimer(p.timer)
	id := p.id
	p.timer = l.At(due, func() { l.expire(id) })
}

// Answer records one observer's verdict on a held event. The hold is
// released when every deciding observer has answered (deny wins), or at the
// deadline. Call it on the loop goroutine; a decider may call it from its
// own Notify callback.
func (l *Loop) Answer(holdID uint64, id ObserverID, v Verdict) error {
	p, ok := l.holds[holdID]
	if !ok {
		return fmt.Errorf("hold %d: not pending (already released or unknown)", holdID)
	}
	if _, ok := p.waiting[id]; !ok {
		return fmt.Errorf("hold %d: observer %d is not asked to decide it (or already answered)", holdID, id)
	}
	delete(p.waiting, id)
	l.vote(p, v)
	l.settle(p)
	return nil
}

// Release answers a held event for everyone at once with exactly v, the
// source's own decision (e.g. on shutdown): deciders still waiting are no
// longer asked. Call it on the loop goroutine.
func (l *Loop) Release(holdID uint64, v Verdict) error {
	p, ok := l.holds[holdID]
	if !ok {
		return fmt.Errorf("hold %d: not pending", holdID)
	}
	clear(p.waiting)
	p.forced, p.decided, p.verdict = true, true, v
	l.settle(p)
	return nil
}

// PendingHolds reports how many held events wait for a verdict.
func (l *Loop) PendingHolds() int { return len(l.holds) }

// vote adds one answer to a hold: deny wins over allow.
func (l *Loop) vote(p *pendingHold, v Verdict) {
	if p.forced {
		return
	}
	p.decided = true
	if v == Deny {
		p.verdict = Deny
	}
}

// settle releases the hold once nobody is left to ask and dispatch is over.
func (l *Loop) settle(p *pendingHold) {
	if p.dispatching || len(p.waiting) > 0 {
		return
	}
	l.conclude(p)
}

// expire runs at a hold's timer: deciders whose timeout (or the hold's
// deadline) passed are overruled with their default verdict.
func (l *Loop) expire(holdID uint64) {
	p, ok := l.holds[holdID]
	if !ok {
		return
	}
	p.timer = 0
	now := l.Now()
	holdExpired := p.ev.Hold.Deadline > 0 && now >= p.start+p.ev.Hold.Deadline
	for id, r := range p.waiting {
		if !holdExpired && now < p.start+r.obs.HoldTimeout {
			continue
		}
		r.overruled++
		l.logf("observer: hold %d (%s %s): %s/%s did not answer in time; taking %s", holdID, p.ev.Source, p.ev.Kind, r.obs.Guest, r.obs.Name, r.obs.HoldDefault)
		l.vote(p, r.obs.HoldDefault)
		delete(p.waiting, id)
	}
	if len(p.waiting) > 0 {
		l.scheduleExpiry(p)
		return
	}
	l.conclude(p)
}

// conclude releases the hold, exactly once: with the combined answers, or
// with the hold's Default when nobody answered.
func (l *Loop) conclude(p *pendingHold) {
	if _, pending := l.holds[p.id]; !pending {
		return
	}
	delete(l.holds, p.id)
	l.StopTimer(p.timer)
	v := p.ev.Hold.Default
	if p.decided {
		v = p.verdict
	}
	if p.release != nil {
		release := p.release
		p.release = nil
		l.guard("release", p.ev.Source, nil, func() { release(v) })
	}
}

func (l *Loop) emitActor(ev *Event, args map[string]string) error {
	out := Event{Source: "emit", Kind: args["kind"], Attrs: map[string]string{}}
	if out.Kind == "" {
		return fmt.Errorf("emit: no kind")
	}
	for k, v := range args {
		if k != "kind" {
			out.Attrs[k] = v
		}
	}
	out.Attrs["cause"] = fmt.Sprint(ev.Seq)
	if !l.Emit(out) {
		return fmt.Errorf("emit: queue full")
	}
	return nil
}

// verdictActor answers a held event on behalf of the observer whose action
// it is. The answer is one vote among the deciders' (deny wins), not a
// release: the hold is released only after every matching observer saw the
// event and every decider answered or timed out. An observer that both
// Decides and has a verdict action thereby answers its own share.
func (l *Loop) verdictActor(ev *Event, args map[string]string) error {
	if ev.Hold == nil {
		return nil
	}
	v, err := ParseVerdict(args["verdict"])
	if err != nil {
		return err
	}
	p, ok := l.holds[ev.Hold.ID]
	if !ok || p.ev != ev {
		return fmt.Errorf("verdict: hold %d is not pending", ev.Hold.ID)
	}
	if r := l.current; r != nil {
		delete(p.waiting, r.id)
	}
	l.vote(p, v)
	l.settle(p)
	return nil
}
