package observer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDispatchOrderPerSource: events of one source are dispatched in the
// order they were posted, Seq increases across all sources, and nothing is
// lost from unbounded sources posting concurrently.
func TestDispatchOrderPerSource(t *testing.T) {
	const sources, perSource = 4, 3000
	c := newCollector()
	var srcs []*Source
	rl := newLoop(t, Options{}, func(l *Loop) {
		for i := range sources {
			srcs = append(srcs, l.NewSource(fmt.Sprint("s", i), 0))
		}
		if _, err := l.Register(Observer{Guest: "test", Name: "all", Filter: mustFilter(t, "kind=tick"), Notify: c.notify}); err != nil {
			t.Fatal(err)
		}
	})
	var wg sync.WaitGroup
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perSource {
				if !s.Post(Event{Kind: "tick", Attrs: map[string]string{"n": strconv.Itoa(n)}}) {
					t.Errorf("unbounded source dropped an event")
				}
			}
		}()
	}
	wg.Wait()
	evs := c.waitFor(t, sources*perSource)
	next := map[string]int{}
	var lastSeq uint64
	for _, ev := range evs {
		if ev.Seq <= lastSeq {
			t.Fatalf("Seq %d after %d", ev.Seq, lastSeq)
		}
		lastSeq = ev.Seq
		n, _ := strconv.Atoi(ev.Attrs["n"])
		if n != next[ev.Source] {
			t.Fatalf("source %s: event %d dispatched when %d was due", ev.Source, n, next[ev.Source])
		}
		next[ev.Source]++
		if ev.Mono <= 0 || ev.Wall.IsZero() {
			t.Fatalf("event %d has no timestamps: mono %v wall %v", ev.Seq, ev.Mono, ev.Wall)
		}
	}
	for _, s := range srcs {
		if next[s.Name()] != perSource {
			t.Errorf("source %s: %d events, want %d", s.Name(), next[s.Name()], perSource)
		}
	}
	for _, info := range rl.Sources() {
		if strings.HasPrefix(info.Name, "s") && (info.Posted != perSource || info.Dropped != 0 || info.Queued != 0) {
			t.Errorf("source info %+v", info)
		}
	}
}

// TestObserverOrderAndCounts: observers see an event in registration order
// and only when their filter matches; Observers() counts the matches.
func TestObserverOrderAndCounts(t *testing.T) {
	var order []string
	var src *Source
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("test", 0)
		for _, name := range []string{"first", "second", "third"} {
			if _, err := l.Register(Observer{Guest: "g", Name: name, Filter: mustFilter(t, "kind=a|b"), Notify: func(ev *Event) {
				order = append(order, name+":"+ev.Kind)
			}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Register(Observer{Guest: "g", Name: "only-b", Filter: mustFilter(t, "kind=b"), Notify: func(ev *Event) {
			order = append(order, "only-b:"+ev.Kind)
		}}); err != nil {
			t.Fatal(err)
		}
	})
	src.Post(Event{Kind: "a"})
	src.Post(Event{Kind: "b"})
	src.Post(Event{Kind: "c"})
	rl.eventually(t, "three events", func() bool { return rl.seq == 3 })
	var got string
	var infos []ObserverInfo
	rl.on(t, func() { got = strings.Join(order, " "); infos = rl.Observers() })
	if want := "first:a second:a third:a first:b second:b third:b only-b:b"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	want := map[string]uint64{"first": 2, "second": 2, "third": 2, "only-b": 1}
	for _, info := range infos {
		if info.Matched != want[info.Name] {
			t.Errorf("%s matched %d, want %d", info.Name, info.Matched, want[info.Name])
		}
	}
}

// TestGuestCodeRunsOnLoopGoroutine: callbacks, actors, timers, calls and
// releases all run on the goroutine that runs Run.
func TestGuestCodeRunsOnLoopGoroutine(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]uint64{}
	record := func(what string) {
		mu.Lock()
		seen[what] = goroutineID()
		mu.Unlock()
	}
	var src *Source
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("test", 0)
		l.DefineActor("record", func(*Event, map[string]string) error { record("actor"); return nil })
		if _, err := l.Register(Observer{Guest: "g", Name: "n", Actions: []Action{{Kind: "record"}},
			Notify: func(*Event) { record("notify") }}); err != nil {
			t.Fatal(err)
		}
		l.AfterFunc(time.Millisecond, func() { record("timer") })
	})
	hold, rec := newHold(t, Allow, 0)
	hold.Release = func(v Verdict) { record("release"); rec.release(v) }
	src.Post(Event{Kind: "x", Hold: hold})
	rec.wait(t)
	rl.Do(func() { record("do") })
	rl.eventually(t, "all kinds of guest code", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 5
	})
	mu.Lock()
	defer mu.Unlock()
	for what, g := range seen {
		if g != rl.goroutine {
			t.Errorf("%s ran on goroutine %d, the loop is %d", what, g, rl.goroutine)
		}
	}
}

// TestPanickingGuestDoesNotKillLoop: a panic in a callback, an actor, a
// timer, a call or a release is logged and costs nobody else anything.
func TestPanickingGuestDoesNotKillLoop(t *testing.T) {
	good := newCollector()
	var src *Source
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("test", 0)
		l.DefineActor("explode", func(*Event, map[string]string) error { panic("actor boom") })
		mustRegister(t, l, Observer{Guest: "bad", Name: "panics", Notify: func(*Event) { panic("callback boom") }})
		mustRegister(t, l, Observer{Guest: "bad", Name: "actor", Actions: []Action{{Kind: "explode"}}})
		mustRegister(t, l, Observer{Guest: "good", Name: "after", Notify: good.notify})
		l.AfterFunc(0, func() { panic("timer boom") })
	})
	rl.Do(func() { panic("call boom") })
	hold := &Hold{Release: func(Verdict) { panic("release boom") }}
	src.Post(Event{Kind: "held", Hold: hold})
	for i := range 3 {
		src.Post(Event{Kind: fmt.Sprint("e", i)})
	}
	evs := good.waitFor(t, 4)
	if evs[3].Kind != "e2" {
		t.Errorf("last event %q", evs[3].Kind)
	}
	rl.eventually(t, "the loop to answer", func() bool { return true })
	for _, boom := range []string{"callback boom", "actor boom", "timer boom", "call boom", "release boom", "bad/panics"} {
		if !rl.log.contains(boom) {
			t.Errorf("log does not mention %q: %q", boom, rl.log.lines)
		}
	}
}

func mustRegister(t testing.TB, l *Loop, o Observer) ObserverID {
	t.Helper()
	id, err := l.Register(o)
	if err != nil {
		t.Fatalf("register %s: %v", o.Name, err)
	}
	return id
}

func TestRegisterRejects(t *testing.T) {
	l := New(Options{})
	cases := []struct {
		o       Observer
		wantErr string
	}{
		{Observer{Name: "a", Actions: []Action{{Kind: "start"}}}, `unknown actor kind "start"`},
		{Observer{Name: "b", Decides: true}, "hold timeout"},
		{Observer{Name: "c", Filter: Filter{Terms: []Term{{Key: "A", Op: "~"}}}}, "unknown operator"},
		{Observer{Name: "d", Actions: []Action{{Kind: "verdict"}}}, "needs a verdict"},
		{Observer{Name: "e", Actions: []Action{{Kind: "verdict", Args: map[string]string{"verdict": "perhaps"}}}}, "perhaps"},
		{Observer{Name: "f", Actions: []Action{{Kind: "emit"}}}, "needs a kind"},
	}
	for _, c := range cases {
		_, err := l.Register(c.o)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("Register(%s) = %v, want an error mentioning %q", c.o.Name, err, c.wantErr)
		}
	}
	if n := len(l.Observers()); n != 0 {
		t.Errorf("%d observers registered by failed calls", n)
	}
}

// TestEmitAction: the emit actor raises a new event, with the cause's Seq,
// that other observers see.
func TestEmitAction(t *testing.T) {
	pings, pongs := newCollector(), newCollector()
	var src *Source
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("test", 0)
		mustRegister(t, l, Observer{Guest: "g", Name: "ping", Filter: mustFilter(t, "source=test kind=ping"),
			Actions: []Action{{Kind: "emit", Args: map[string]string{"kind": "pong", "unit": "foo.service"}}}})
		mustRegister(t, l, Observer{Guest: "g", Name: "seen", Filter: mustFilter(t, "source=test kind=ping"), Notify: pings.notify})
		mustRegister(t, l, Observer{Guest: "g", Name: "pong", Filter: mustFilter(t, "source=emit kind=pong"), Notify: pongs.notify})
	})
	src.Post(Event{Kind: "ping"})
	src.Post(Event{Kind: "ping"})
	evs := pongs.waitFor(t, 2)
	if evs[0].Attrs["unit"] != "foo.service" || evs[0].Attrs["kind"] != "" {
		t.Errorf("emitted attrs %v", evs[0].Attrs)
	}
	// An emitted event takes the next sequence number, so it may come
	// between the two pings: compare with the pings' own numbers.
	seen := pings.waitFor(t, 2)
	want := map[string]bool{strconv.FormatUint(seen[0].Seq, 10): true, strconv.FormatUint(seen[1].Seq, 10): true}
	for _, ev := range evs[:2] {
		if !want[ev.Attrs["cause"]] {
			t.Errorf("pong cause %q, want one of the pings' sequence numbers %v", ev.Attrs["cause"], want)
		}
		delete(want, ev.Attrs["cause"])
	}
	if !rl.Emit(Event{Kind: "pong"}) {
		t.Errorf("Emit dropped")
	}
	pongs.waitFor(t, 3)
}

// TestBoundedSourceDropsAndCounts: a full bounded source drops the newest
// event, counts it, never blocks, and what was queued is dispatched.
func TestBoundedSourceDropsAndCounts(t *testing.T) {
	log := &logBuffer{}
	l := New(Options{Logf: log.logf})
	src := l.NewSource("small", 5)
	c := newCollector()
	mustRegister(t, l, Observer{Guest: "g", Name: "n", Filter: mustFilter(t, "source=small"), Notify: c.notify})
	accepted := 0
	for i := range 12 {
		if src.Post(Event{Kind: "e", Attrs: map[string]string{"n": strconv.Itoa(i)}}) {
			accepted++
		}
	}
	if accepted != 5 {
		t.Errorf("accepted %d, want 5", accepted)
	}
	info := sourceInfo(t, l, "small")
	if info.Posted != 5 || info.Dropped != 7 || info.Queued != 5 {
		t.Errorf("before Run: %+v", info)
	}
	rl := startLoop(t, l, log)
	evs := c.waitFor(t, 5)
	for i, ev := range evs {
		if ev.Attrs["n"] != strconv.Itoa(i) {
			t.Errorf("event %d is n=%s", i, ev.Attrs["n"])
		}
	}
	rl.eventually(t, "an empty queue", func() bool { return sourceInfo(t, l, "small").Queued == 0 })
	// Room again: the source accepts new events.
	if !src.Post(Event{Kind: "e", Attrs: map[string]string{"n": "late"}}) {
		t.Errorf("source still full after the loop drained it")
	}
	c.waitFor(t, 6)
	if n := len(c.snapshot()); n != 6 {
		t.Errorf("%d events dispatched, want 6", n)
	}
}

func sourceInfo(t testing.TB, l *Loop, name string) SourceInfo {
	for _, info := range l.Sources() {
		if info.Name == name {
			return info
		}
	}
	t.Fatalf("no source %q", name)
	return SourceInfo{}
}

// TestUnboundedSourceKeepsEverything: 100,000 events posted before the loop
// runs all arrive, in order.
func TestUnboundedSourceKeepsEverything(t *testing.T) {
	const n = 100000
	l := New(Options{})
	src := l.NewSource("exits", 0)
	count, inOrder := 0, true
	mustRegister(t, l, Observer{Guest: "g", Name: "n", Filter: mustFilter(t, "source=exits"), Notify: func(ev *Event) {
		if ev.Payload.(int) != count {
			inOrder = false
		}
		count++
	}})
	for i := range n {
		if !src.Post(Event{Kind: "exit", Payload: i}) {
			t.Fatalf("unbounded source dropped event %d", i)
		}
	}
	rl := startLoop(t, l, &logBuffer{})
	rl.eventually(t, "every event", func() bool { return count == n })
	rl.on(t, func() {
		if !inOrder {
			t.Errorf("events out of order")
		}
	})
	if info := sourceInfo(t, l, "exits"); info.Posted != n || info.Dropped != 0 {
		t.Errorf("%+v", info)
	}
}

// TestSlowQueueLosesOnlyItsOwnEvents: a socket guest that stops reading
// loses its own events, counted; everyone else gets every event.
func TestSlowQueueLosesOnlyItsOwnEvents(t *testing.T) {
	const n = 1000
	slow, fast := NewQueue(10), NewQueue(n)
	inProcess := newCollector()
	var src *Source
	var slowID ObserverID
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("test", 0)
		slowID = mustRegister(t, l, Observer{Guest: "slow", Name: "q", Queue: slow})
		mustRegister(t, l, Observer{Guest: "fast", Name: "q", Queue: fast})
		mustRegister(t, l, Observer{Guest: "local", Name: "n", Notify: inProcess.notify})
	})
	for i := range n {
		src.Post(Event{Kind: "e", Payload: i})
	}
	inProcess.waitFor(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := range n {
		ev := fast.Next(ctx)
		if ev == nil || ev.Payload.(int) != i {
			t.Fatalf("fast queue: event %d is %v", i, ev)
		}
	}
	for i := range 10 {
		ev := slow.Next(ctx)
		if ev == nil || ev.Payload.(int) != i {
			t.Fatalf("slow queue: event %d is %v", i, ev)
		}
	}
	if d := slow.Dropped(); d != n-10 {
		t.Errorf("slow queue dropped %d, want %d", d, n-10)
	}
	if d := fast.Dropped(); d != 0 {
		t.Errorf("fast queue dropped %d", d)
	}
	rl.on(t, func() {
		for _, info := range rl.Observers() {
			want := uint64(0)
			if info.ID == slowID {
				want = n - 10
			}
			if info.Dropped != want || info.Matched != n {
				t.Errorf("%s/%s: matched %d dropped %d, want %d, %d", info.Guest, info.Name, info.Matched, info.Dropped, n, want)
			}
		}
	})
}

func TestQueueNextEndsWithContextAndClose(t *testing.T) {
	q := NewQueue(0)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *Event)
	go func() { got <- q.Next(ctx) }()
	cancel()
	if ev := <-got; ev != nil {
		t.Errorf("Next after cancel = %v", ev)
	}
	q.deliver(&Event{Kind: "a"})
	q.Close()
	q.deliver(&Event{Kind: "after close"})
	if ev := q.Next(context.Background()); ev == nil || ev.Kind != "a" {
		t.Errorf("queued event lost at Close: %v", ev)
	}
	if ev := q.Next(context.Background()); ev != nil {
		t.Errorf("Next on closed empty queue = %v", ev)
	}
	go func() { got <- q.Next(context.Background()) }()
	select {
	case ev := <-got:
		if ev != nil {
			t.Errorf("got %v", ev)
		}
	case <-time.After(wait):
		t.Fatal("Next blocked on a closed queue")
	}
}

// TestRegisterAndUnregisterDuringDispatch: an observer unregistered by an
// earlier one's callback does not see the event being dispatched; one
// registered then sees only later events.
func TestRegisterAndUnregisterDuringDispatch(t *testing.T) {
	victim, newcomer := newCollector(), newCollector()
	var src *Source
	var victimID ObserverID
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("test", 0)
		mustRegister(t, l, Observer{Guest: "g", Name: "killer", Filter: mustFilter(t, "kind=kill"), Notify: func(*Event) {
			l.Unregister(victimID)
			mustRegister(t, l, Observer{Guest: "g", Name: "newcomer", Notify: newcomer.notify})
		}})
		victimID = mustRegister(t, l, Observer{Guest: "g", Name: "victim", Notify: victim.notify})
	})
	src.Post(Event{Kind: "before"})
	src.Post(Event{Kind: "kill"})
	src.Post(Event{Kind: "after"})
	evs := newcomer.waitFor(t, 1)
	if len(evs) != 1 || evs[0].Kind != "after" {
		t.Errorf("newcomer saw %v", evs)
	}
	if evs := victim.snapshot(); len(evs) != 1 || evs[0].Kind != "before" {
		t.Errorf("victim saw %v", evs)
	}
	var names []string
	rl.on(t, func() {
		for _, o := range rl.Observers() {
			names = append(names, o.Name)
		}
	})
	if strings.Join(names, ",") != "killer,newcomer" {
		t.Errorf("observers %v", names)
	}
}

func TestTimers(t *testing.T) {
	var order []string
	var stopped TimerID
	var base, nestedDue time.Duration
	start := time.Now() // before the loop's clock starts: the lower bound below holds
	// One base for every due time: a preempted setup must not reorder them
	// (AfterFunc is At(Now()+d); TestTimerDueTime covers it).
	rl := newLoop(t, Options{}, func(l *Loop) {
		base = l.Now()
		l.At(base+30*time.Millisecond, func() { order = append(order, "30ms") })
		l.At(base+10*time.Millisecond, func() { order = append(order, "10ms-a") })
		l.At(base+20*time.Millisecond, func() { order = append(order, "20ms") })
		l.At(base+10*time.Millisecond, func() { order = append(order, "10ms-b") })
		stopped = l.At(base+15*time.Millisecond, func() { order = append(order, "stopped") })
		l.At(base+5*time.Millisecond, func() {
			l.StopTimer(stopped)
			l.StopTimer(stopped) // twice is harmless
			l.StopTimer(12345)   // unknown too
			// A timer set from a timer runs later, not now: after this
			// callback, and after every timer due no later than itself.
			nestedDue = l.Now()
			l.AfterFunc(0, func() { order = append(order, "nested") })
			order = append(order, "5ms")
		})
	})
	rl.eventually(t, "all timers", func() bool { return rl.PendingTimers() == 0 })
	if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
		t.Errorf("timers done after %v, before the last was due", elapsed)
	}
	var got string
	var due time.Duration
	rl.on(t, func() { got, due = strings.Join(order, " "), nestedDue-base })
	// Where "nested" falls depends on when the loop got to the 5ms timer (a
	// loaded host runs it late): by due time, after timers due at the same
	// instant since it was set last.
	want := []string{"5ms"}
	placed := false
	for _, timer := range []struct {
		due  time.Duration
		name string
	}{{10 * time.Millisecond, "10ms-a"}, {10 * time.Millisecond, "10ms-b"}, {20 * time.Millisecond, "20ms"}, {30 * time.Millisecond, "30ms"}} {
		if !placed && due < timer.due {
			want, placed = append(want, "nested"), true
		}
		want = append(want, timer.name)
	}
	if !placed {
		want = append(want, "nested")
	}
	if w := strings.Join(want, " "); got != w {
		t.Errorf("timer order %q, want %q (nested timer set at %v)", got, w, due)
	}
}

// TestTimerDueTime: a timer never fires early.
func TestTimerDueTime(t *testing.T) {
	fired := make(chan time.Duration, 1)
	var setAt time.Duration
	rl := newLoop(t, Options{}, nil)
	rl.on(t, func() {
		setAt = rl.Now()
		rl.AfterFunc(40*time.Millisecond, func() { fired <- rl.Now() })
	})
	select {
	case at := <-fired:
		if at-setAt < 40*time.Millisecond {
			t.Errorf("fired after %v", at-setAt)
		}
	case <-time.After(wait):
		t.Fatal("timer never fired")
	}
}

// TestDoAndCallFromManyGoroutines: calls from other goroutines all run, on
// the loop, without locks in the guest's state.
func TestDoAndCallFromManyGoroutines(t *testing.T) {
	const goroutines, each = 8, 1000
	counter := 0
	rl := newLoop(t, Options{}, nil)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%100 == 0 {
					rl.on(t, func() { counter++ })
				} else {
					rl.Do(func() { counter++ })
				}
			}
		}()
	}
	wg.Wait()
	rl.eventually(t, "every call", func() bool { return counter == goroutines*each })
	// Calls run in the order they were handed over.
	var order []int
	for i := range 100 {
		rl.Do(func() { order = append(order, i) })
	}
	rl.on(t, func() {
		for i, v := range order {
			if v != i {
				t.Fatalf("call %d ran as %d", v, i)
			}
		}
	})
}

func TestCallOnStoppedLoopEndsWithContext(t *testing.T) {
	l := New(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	if err := l.Call(ctx, func() { ran = true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call = %v, want DeadlineExceeded", err)
	}
	// The call is still queued: a later Run carries it out.
	rl := startLoop(t, l, &logBuffer{})
	rl.eventually(t, "the queued call", func() bool { return ran })
}

func TestRunEndsWithContextAndRunsOnce(t *testing.T) {
	l := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	// Wait until the first Run is surely running.
	callCtx, callCancel := context.WithTimeout(context.Background(), wait)
	defer callCancel()
	if err := l.Call(callCtx, func() {}); err != nil {
		t.Fatal(err)
	}
	// Bounded, so that a regression shows as a wrong answer, not a hang.
	secondCtx, secondCancel := context.WithTimeout(context.Background(), time.Second)
	defer secondCancel()
	if err := l.Run(secondCtx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run = %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not end with its context")
	}
	// A stopped loop can run again, with its state.
	ran := make(chan struct{})
	l.Do(func() { close(ran) })
	ctx2, cancel2 := context.WithCancel(context.Background())
	go l.Run(ctx2)
	defer cancel2()
	select {
	case <-ran:
	case <-time.After(wait):
		t.Fatal("second Run did not run queued calls")
	}
}

func TestEventString(t *testing.T) {
	ev := Event{Source: "uevent", Kind: "add", Mono: 1500 * time.Millisecond, Attrs: map[string]string{"B": "2", "A": "1"}, Hold: &Hold{ID: 7}}
	if got, want := ev.String(), "UEVENT add [1.500000] A=1 B=2 hold=7"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if ev.Attr("A") != "1" || ev.Attr("C") != "" {
		t.Errorf("Attr")
	}
}
