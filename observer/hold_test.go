package observer

import (
	"strings"
	"testing"
	"time"
)

// holdLoop starts a loop with a "held" source and the given observers; it
// returns the loop, the source and the observers' IDs in order.
func holdLoop(t *testing.T, observers ...Observer) (*runningLoop, *Source, []ObserverID) {
	t.Helper()
	var src *Source
	var ids []ObserverID
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("held", 16)
		for _, o := range observers {
			ids = append(ids, mustRegister(t, l, o))
		}
	})
	return rl, src, ids
}

// decider is an observer that decides holds and hands each held event to
// the test through a channel.
func decider(name string, timeout time.Duration, def Verdict, got chan<- *Event) Observer {
	return Observer{Guest: "g", Name: name, Decides: true, HoldTimeout: timeout, HoldDefault: def,
		Notify: func(ev *Event) {
			if got != nil {
				got <- ev
			}
		}}
}

func receive(t *testing.T, ch <-chan *Event) *Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
		return nil
	}
}

func (rl *runningLoop) answer(t *testing.T, hold uint64, id ObserverID, v Verdict) {
	t.Helper()
	var err error
	rl.on(t, func() { err = rl.Answer(hold, id, v) })
	if err != nil {
		t.Fatalf("Answer(%d, %d, %v): %v", hold, id, v, err)
	}
}

func (rl *runningLoop) observerInfo(t *testing.T, id ObserverID) ObserverInfo {
	t.Helper()
	var info ObserverInfo
	rl.on(t, func() {
		for _, o := range rl.Observers() {
			if o.ID == id {
				info = o
			}
		}
	})
	return info
}

func TestHoldWithoutDecidersTakesDefaultAtOnce(t *testing.T) {
	watcher := newCollector()
	rl, src, _ := holdLoop(t, Observer{Guest: "g", Name: "watch", Notify: watcher.notify})
	for _, def := range []Verdict{Deny, Allow} {
		hold, rec := newHold(t, def, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		if v := rec.wait(t); v != def {
			t.Errorf("released with %v, want the default %v", v, def)
		}
	}
	if evs := watcher.waitFor(t, 2); evs[0].Hold.ID == 0 || evs[1].Hold.ID <= evs[0].Hold.ID {
		t.Errorf("hold IDs %d %d", evs[0].Hold.ID, evs[1].Hold.ID)
	}
	rl.eventually(t, "no pending holds", func() bool { return rl.PendingHolds() == 0 })
}

// TestHoldCombinedVerdict: the hold waits for every decider and is released
// once, deny winning; late answers are refused.
func TestHoldCombinedVerdict(t *testing.T) {
	for _, c := range []struct {
		answers []Verdict
		want    Verdict
	}{
		{[]Verdict{Allow, Allow, Allow}, Allow},
		{[]Verdict{Allow, Deny, Allow}, Deny},
		{[]Verdict{Deny, Deny, Deny}, Deny},
	} {
		got := make(chan *Event, 3)
		rl, src, ids := holdLoop(t,
			decider("a", time.Hour, Allow, got), decider("b", time.Hour, Allow, got), decider("c", time.Hour, Allow, got))
		hold, rec := newHold(t, Allow, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		ev := receive(t, got)
		for i, v := range c.answers {
			rl.answer(t, ev.Hold.ID, ids[i], v)
			if _, released := rec.released(); released != (i == len(c.answers)-1) {
				t.Fatalf("after answer %d of %d: released = %v", i+1, len(c.answers), released)
			}
		}
		if v := rec.wait(t); v != c.want {
			t.Errorf("answers %v: released %v, want %v", c.answers, v, c.want)
		}
		var err error
		rl.on(t, func() { err = rl.Answer(ev.Hold.ID, ids[0], Allow) })
		if err == nil || !strings.Contains(err.Error(), "not pending") {
			t.Errorf("late Answer = %v", err)
		}
		for _, id := range ids {
			if info := rl.observerInfo(t, id); info.Overrul != 0 {
				t.Errorf("%s overruled %d times", info.Name, info.Overrul)
			}
		}
	}
}

func TestAnswerRefusesStrangersAndRepeats(t *testing.T) {
	got := make(chan *Event, 1)
	rl, src, ids := holdLoop(t, decider("a", time.Hour, Allow, got), decider("b", time.Hour, Allow, nil),
		Observer{Guest: "g", Name: "watcher"})
	hold, rec := newHold(t, Allow, 0)
	src.Post(Event{Kind: "open", Hold: hold})
	ev := receive(t, got)
	rl.answer(t, ev.Hold.ID, ids[0], Deny)
	var again, stranger, unknown error
	rl.on(t, func() {
		again = rl.Answer(ev.Hold.ID, ids[0], Allow)
		stranger = rl.Answer(ev.Hold.ID, ids[2], Allow)
		unknown = rl.Answer(999, ids[1], Allow)
	})
	if again == nil || stranger == nil || unknown == nil {
		t.Errorf("Answer accepted: repeat %v, non-decider %v, unknown hold %v", again, stranger, unknown)
	}
	rl.answer(t, ev.Hold.ID, ids[1], Allow)
	if v := rec.wait(t); v != Deny {
		t.Errorf("released %v; the first answer was deny", v)
	}
}

// TestHoldOverruledAtDeadline: a decider that never answers is overruled
// with its own default when its timeout passes, and counted.
func TestHoldOverruledAtDeadline(t *testing.T) {
	for _, def := range []Verdict{Deny, Allow} {
		rl, src, ids := holdLoop(t, decider("silent", 50*time.Millisecond, def, nil))
		hold, rec := newHold(t, 1-def, 0) // the hold's default is the other one
		posted := time.Now()
		src.Post(Event{Kind: "open", Hold: hold})
		if v := rec.wait(t); v != def {
			t.Errorf("released %v, want the observer's default %v", v, def)
		}
		if d := rec.at.Sub(posted); d < 50*time.Millisecond {
			t.Errorf("overruled after %v, before the 50ms timeout", d)
		}
		if info := rl.observerInfo(t, ids[0]); info.Overrul != 1 {
			t.Errorf("overruled count %d, want 1", info.Overrul)
		}
		rl.eventually(t, "no pending holds and timers", func() bool { return rl.PendingHolds() == 0 && rl.PendingTimers() == 0 })
		if !rl.log.contains("did not answer in time") {
			t.Errorf("no log of the overruling: %q", rl.log.lines)
		}
	}
}

// TestHoldTimeoutsArePerDecider: a quick decider timing out does not cut
// short a slow one that still has time; the slow one's answer counts.
func TestHoldTimeoutsArePerDecider(t *testing.T) {
	got := make(chan *Event, 2)
	rl, src, ids := holdLoop(t, decider("quick", 20*time.Millisecond, Allow, nil), decider("slow", time.Hour, Allow, got))
	hold, rec := newHold(t, Allow, 0)
	src.Post(Event{Kind: "open", Hold: hold})
	ev := receive(t, got)
	rl.eventually(t, "the quick decider to be overruled", func() bool {
		for _, o := range rl.Observers() {
			if o.ID == ids[0] && o.Overrul == 1 {
				return true
			}
		}
		return false
	})
	if _, released := rec.released(); released {
		t.Fatal("hold released although the slow decider still had time")
	}
	rl.answer(t, ev.Hold.ID, ids[1], Deny)
	if v := rec.wait(t); v != Deny {
		t.Errorf("released %v, want the slow decider's deny", v)
	}
	if info := rl.observerInfo(t, ids[1]); info.Overrul != 0 {
		t.Errorf("slow decider overruled %d times", info.Overrul)
	}
}

// TestHoldDeadlineCapsDeciders: the hold's own deadline overrules deciders
// that would wait longer.
func TestHoldDeadlineCapsDeciders(t *testing.T) {
	rl, src, ids := holdLoop(t, decider("patient", time.Hour, Deny, nil))
	hold, rec := newHold(t, Allow, 30*time.Millisecond)
	posted := time.Now()
	src.Post(Event{Kind: "open", Hold: hold})
	if v := rec.wait(t); v != Deny {
		t.Errorf("released %v, want the decider's default deny", v)
	}
	if d := rec.at.Sub(posted); d < 30*time.Millisecond || d > wait/2 {
		t.Errorf("released after %v, want at the 30ms deadline", d)
	}
	if info := rl.observerInfo(t, ids[0]); info.Overrul != 1 {
		t.Errorf("overruled %d", info.Overrul)
	}
}

// TestUnregisterDeciderReleasesItsShare: a decider that leaves counts as
// answering its default, without being counted as overruled.
func TestUnregisterDeciderReleasesItsShare(t *testing.T) {
	for _, def := range []Verdict{Allow, Deny} {
		got := make(chan *Event, 1)
		rl, src, ids := holdLoop(t, decider("answers", time.Hour, Allow, got), decider("leaves", time.Hour, def, nil))
		hold, rec := newHold(t, Allow, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		ev := receive(t, got)
		rl.answer(t, ev.Hold.ID, ids[0], Allow)
		rl.on(t, func() { rl.Unregister(ids[1]) })
		if v := rec.wait(t); v != def {
			t.Errorf("released %v, want the leaver's default %v", v, def)
		}
		if info := rl.observerInfo(t, ids[0]); info.Overrul != 0 {
			t.Errorf("overruled %d", info.Overrul)
		}
	}
}

// TestHeldEventDroppedAtFullSource: a held event that does not fit in its
// source is released with its default, once, though nobody saw it.
func TestHeldEventDroppedAtFullSource(t *testing.T) {
	log := &logBuffer{}
	l := New(Options{Logf: log.logf})
	src := l.NewSource("tiny", 1)
	seen := newCollector()
	mustRegister(t, l, Observer{Guest: "g", Name: "allow-all", Actions: []Action{{Kind: "verdict", Args: map[string]string{"verdict": "allow"}}}, Notify: seen.notify})
	first, firstRec := newHold(t, Deny, 0)
	second, secondRec := newHold(t, Deny, 0)
	if !src.Post(Event{Kind: "open", Hold: first}) {
		t.Fatal("first event dropped")
	}
	if src.Post(Event{Kind: "open", Hold: second}) {
		t.Fatal("second event fit in a queue of one")
	}
	startLoop(t, l, log)
	if v := secondRec.wait(t); v != Deny {
		t.Errorf("dropped event released %v, want its default deny", v)
	}
	if v := firstRec.wait(t); v != Allow {
		t.Errorf("dispatched event released %v, want the actor's allow", v)
	}
	if evs := seen.waitFor(t, 1); len(evs) != 1 {
		t.Errorf("observer saw %d events", len(evs))
	}
	if info := sourceInfo(t, l, "tiny"); info.Dropped != 1 {
		t.Errorf("%+v", info)
	}
}

// TestVerdictActorIsOneVote pins down how a "verdict" action and deciders
// registered by other observers combine: the action is its observer's
// answer, one vote among the deciders' (deny wins), and the hold is
// released only after every matching observer saw the event and every
// decider answered.
func TestVerdictActorIsOneVote(t *testing.T) {
	verdictObs := func(v string) Observer {
		return Observer{Guest: "policy", Name: "verdict-" + v, Actions: []Action{{Kind: "verdict", Args: map[string]string{"verdict": v}}}}
	}
	t.Run("alone it decides, whatever the hold's default", func(t *testing.T) {
		_, src, _ := holdLoop(t, verdictObs("allow"))
		hold, rec := newHold(t, Deny, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		if v := rec.wait(t); v != Allow {
			t.Errorf("released %v", v)
		}
	})
	t.Run("observers after it still see the event before release", func(t *testing.T) {
		var releasedBeforeLater bool
		var rec *holdRecorder
		later := newCollector()
		_, src, _ := holdLoop(t, verdictObs("deny"), Observer{Guest: "g", Name: "later", Notify: func(ev *Event) {
			_, releasedBeforeLater = rec.released()
			later.notify(ev)
		}})
		var hold *Hold
		hold, rec = newHold(t, Allow, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		if v := rec.wait(t); v != Deny {
			t.Errorf("released %v", v)
		}
		later.waitFor(t, 1)
		if releasedBeforeLater {
			t.Errorf("hold released before a later observer saw the event")
		}
	})
	t.Run("an allow action waits for another observer's decider", func(t *testing.T) {
		got := make(chan *Event, 1)
		rl, src, ids := holdLoop(t, verdictObs("allow"), decider("judge", time.Hour, Allow, got))
		hold, rec := newHold(t, Allow, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		ev := receive(t, got)
		rl.on(t, func() {})
		if _, released := rec.released(); released {
			t.Fatal("released before the decider answered")
		}
		rl.answer(t, ev.Hold.ID, ids[1], Deny)
		if v := rec.wait(t); v != Deny {
			t.Errorf("released %v, want the decider's deny", v)
		}
	})
	t.Run("a deny action beats a decider's allow", func(t *testing.T) {
		got := make(chan *Event, 1)
		rl, src, ids := holdLoop(t, decider("judge", time.Hour, Allow, got), verdictObs("deny"))
		hold, rec := newHold(t, Allow, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		ev := receive(t, got)
		rl.answer(t, ev.Hold.ID, ids[0], Allow)
		if v := rec.wait(t); v != Deny {
			t.Errorf("released %v", v)
		}
	})
	t.Run("a decider's own verdict action is its answer", func(t *testing.T) {
		self := decider("self", time.Hour, Deny, nil)
		self.Actions = []Action{{Kind: "verdict", Args: map[string]string{"verdict": "allow"}}}
		rl, src, ids := holdLoop(t, self)
		hold, rec := newHold(t, Deny, 0)
		src.Post(Event{Kind: "open", Hold: hold})
		if v := rec.wait(t); v != Allow {
			t.Errorf("released %v", v)
		}
		if info := rl.observerInfo(t, ids[0]); info.Overrul != 0 {
			t.Errorf("overruled %d", info.Overrul)
		}
	})
	t.Run("events without a hold are untouched", func(t *testing.T) {
		c := newCollector()
		_, src, _ := holdLoop(t, verdictObs("deny"), Observer{Guest: "g", Name: "n", Notify: c.notify})
		src.Post(Event{Kind: "plain"})
		c.waitFor(t, 1)
	})
}

// TestDeciderAnswersFromItsCallback: answering synchronously, inside Notify,
// works and still releases after every observer saw the event.
func TestDeciderAnswersFromItsCallback(t *testing.T) {
	var loop *Loop
	var selfID ObserverID
	var answerErr error
	var rec *holdRecorder
	var releasedBeforeLast bool
	self := decider("sync", time.Hour, Deny, nil)
	self.Notify = func(ev *Event) { answerErr = loop.Answer(ev.Hold.ID, selfID, Allow) }
	last := Observer{Guest: "g", Name: "last", Notify: func(*Event) { _, releasedBeforeLast = rec.released() }}
	rl, src, ids := holdLoop(t, self, last)
	loop, selfID = rl.Loop, ids[0]
	var hold *Hold
	hold, rec = newHold(t, Deny, 0)
	src.Post(Event{Kind: "open", Hold: hold})
	if v := rec.wait(t); v != Allow {
		t.Errorf("released %v", v)
	}
	rl.on(t, func() {
		if answerErr != nil {
			t.Errorf("Answer from Notify: %v", answerErr)
		}
		if releasedBeforeLast {
			t.Errorf("released before the last observer saw the event")
		}
	})
}

// TestReleaseBySourceIsFinal: the source's own Release overrides votes and
// ends the wait for deciders.
func TestReleaseBySourceIsFinal(t *testing.T) {
	got := make(chan *Event, 1)
	rl, src, ids := holdLoop(t, decider("judge", time.Hour, Deny, got), Observer{Guest: "p", Name: "deny",
		Actions: []Action{{Kind: "verdict", Args: map[string]string{"verdict": "deny"}}}})
	hold, rec := newHold(t, Deny, 0)
	src.Post(Event{Kind: "open", Hold: hold})
	ev := receive(t, got)
	var err error
	rl.on(t, func() { err = rl.Release(ev.Hold.ID, Allow) })
	if err != nil {
		t.Fatal(err)
	}
	if v := rec.wait(t); v != Allow {
		t.Errorf("released %v, want the source's allow", v)
	}
	rl.on(t, func() {
		if err := rl.Answer(ev.Hold.ID, ids[0], Deny); err == nil {
			t.Errorf("Answer after Release accepted")
		}
		if err := rl.Release(ev.Hold.ID, Deny); err == nil {
			t.Errorf("second Release accepted")
		}
		if rl.PendingHolds() != 0 || rl.PendingTimers() != 0 {
			t.Errorf("%d holds, %d timers left", rl.PendingHolds(), rl.PendingTimers())
		}
	})
}

// TestManyHolds: many held events in flight, decided by a decider that
// answers some and ignores others, are each released exactly once with the
// right verdict.
func TestManyHolds(t *testing.T) {
	const n = 500
	got := make(chan *Event, n)
	var src *Source
	var judge ObserverID
	rl := newLoop(t, Options{}, func(l *Loop) {
		src = l.NewSource("many", 0)
		judge = mustRegister(t, l, decider("judge", 200*time.Millisecond, Deny, got))
	})
	recs := make([]*holdRecorder, n)
	for i := range n {
		var hold *Hold
		hold, recs[i] = newHold(t, Allow, 0)
		src.Post(Event{Kind: "open", Hold: hold, Payload: i})
	}
	late := 0
	for range n {
		ev := receive(t, got)
		i := ev.Payload.(int)
		if i%3 == 0 {
			continue // never answered: overruled with deny
		}
		v := Allow
		if i%3 == 2 {
			v = Deny
		}
		var err error
		rl.on(t, func() { err = rl.Answer(ev.Hold.ID, judge, v) })
		if err != nil {
			late++ // the machine was too slow: overruled before the answer
		}
	}
	for i, rec := range recs {
		v := rec.wait(t)
		if want := Deny; i%3 == 1 {
			if v != Allow && late == 0 {
				t.Errorf("hold %d: %v, want allow", i, v)
			}
		} else if v != want {
			t.Errorf("hold %d: %v, want deny", i, v)
		}
	}
	if info := rl.observerInfo(t, judge); int(info.Overrul) != (n+2)/3+late {
		t.Errorf("overruled %d, want %d never answered + %d late", info.Overrul, (n+2)/3, late)
	}
	rl.eventually(t, "no pending holds", func() bool { return rl.PendingHolds() == 0 && rl.PendingTimers() == 0 })
}
