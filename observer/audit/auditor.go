package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"vigil/observer"
)

// GuestName is the auditor's guest name in observer listings.
const GuestName = "audit"

// Marker places fanotify marks for the auditor; the fanotify source
// implements it through a small adapter. unmark removes the mark again.
type Marker interface {
	Mark(path string, access Access, tree bool) (unmark func(), err error)
}

// Options configure an Auditor.
type Options struct {
	Loop *observer.Loop
	// ConfigPath is the policy file; default DefaultConfigPath.
	ConfigPath string
	Logf       func(format string, args ...any)
	// HashWorkers digest files for sha256 and trust rules off the loop;
	// default 2.
	HashWorkers int
}

// hashQueue bounds the accesses waiting for a digest; past it they get
// the timeout-verdict at once (counted as busy).
const hashQueue = 256

// Counters are the auditor's totals since it started.
type Counters struct {
	Decisions  uint64 `json:"decisions"`
	Allowed    uint64 `json:"allowed"`
	Denied     uint64 `json:"denied"`
	WouldDeny  uint64 `json:"would_deny"`
	Inline     uint64 `json:"inline"`
	Late       uint64 `json:"late"`
	Busy       uint64 `json:"busy"`
	HashErrors uint64 `json:"hash_errors"`
	// HashHits and HashMisses count digests found in the cache and
	// computed; HashCached is how many the cache holds.
	HashHits   uint64 `json:"hash_hits"`
	HashMisses uint64 `json:"hash_misses"`
	HashCached int    `json:"hash_cached"`
	Logged     uint64 `json:"logged"`
	LogDropped uint64 `json:"log_dropped"`
	Rotations  uint64 `json:"log_rotations"`
	Reloads    uint64 `json:"reloads"`
	ReloadFail uint64 `json:"reload_failures"`
}

// Auditor is the auditing guest. Create it with New (any goroutine), then
// call Start on the loop goroutine (or before the loop runs).
type Auditor struct {
	opts Options
	// policy is the current immutable snapshot; nil when there is no
	// policy file (the auditor then decides nothing).
	policy atomic.Pointer[Policy]
	hashes hashCache
	// hashFile digests a file; tests replace it to play a stuck auditor.
	hashFile func(path string) fileHash

	decisions, allowed, denied, wouldDeny, inline, late, busy, hashErrors atomic.Uint64
	reloads, reloadFail                                                   atomic.Uint64

	jobs     chan hashJob
	inlineQ  chan inlineJob
	stopOnce sync.Once
	stop     chan struct{}
	workers  sync.WaitGroup
	// keepers run the hash workers; set in New, read-only after.
	keepers []*observer.Keeper

	// logMu guards log, which Inline reads from the fanotify reader while
	// a reload on the loop may replace it.
	logMu sync.Mutex
	log   *logWriter

	// Owned by the loop goroutine.
	marker      Marker
	unavailable string
	observer    observer.ObserverID
	obsTimeout  time.Duration
	obsDefault  observer.Verdict
	marks       map[markTarget]markState
	lastError   string
	controlObs  []observer.ObserverID
	watcher     *configWatcher
}

type markState struct {
	access Access
	unmark func()
	err    string
}

// inlineJob is an inline decision waiting for a digest (InlineLater).
type inlineJob struct {
	req    AccessRequest
	policy *Policy
	answer func(observer.Verdict)
}

type hashJob struct {
	ev     *observer.Event
	req    AccessRequest
	policy *Policy
	obs    observer.ObserverID
}

// New loads the policy. A missing file means no policy (nothing is
// audited); a broken one is reported and also means no policy, so that a
// bad audit.toml never stops the boot. The returned error is only for the
// log: the Auditor is always usable.
func New(opts Options) (*Auditor, error) {
	if opts.ConfigPath == "" {
		opts.ConfigPath = DefaultConfigPath
	}
	if opts.HashWorkers <= 0 {
		opts.HashWorkers = 2
	}
	a := &Auditor{opts: opts, jobs: make(chan hashJob, hashQueue), inlineQ: make(chan inlineJob, hashQueue),
		stop: make(chan struct{}), marks: map[markTarget]markState{}}
	a.hashFile = a.hashes.hash
	// The workers are kept: a panic in a digest (a bug meeting one odd
	// file) restarts the worker, where it would otherwise leave every
	// later access waiting for its deadline.
	for i := 0; i < opts.HashWorkers; i++ {
		a.keep("audit hash worker", a.hashWorker)
	}
	// Inline decisions have a worker of their own: a service's start must
	// not wait behind digests of the loop's accesses.
	a.keep("audit inline hash worker", a.inlineWorker)
	p, err := LoadPolicy(opts.ConfigPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return a, nil
	case err != nil:
		a.lastError = err.Error()
		return a, err
	}
	a.policy.Store(p)
	a.setLog(p)
	return a, nil
}

func (a *Auditor) logf(format string, args ...any) {
	if a.opts.Logf != nil {
		a.opts.Logf(format, args...)
	}
}

// Policy is the current snapshot, nil when none is loaded.
func (a *Auditor) Policy() *Policy { return a.policy.Load() }

// setLog (re)opens the log writer when the policy's log settings differ.
func (a *Auditor) setLog(p *Policy) {
	a.logMu.Lock()
	old := a.log
	if old != nil && old.path == p.Log && old.maxSize == p.LogMaxSize && old.keep == p.LogKeep {
		a.logMu.Unlock()
		return
	}
	a.log = startLogWriter(p.Log, p.LogMaxSize, p.LogKeep, a.logf)
	a.logMu.Unlock()
	if old != nil {
		// The old writer drains on its own; its followers see no more.
		go old.Close()
	}
}

// record hands a record to the log writer. Write never blocks, so it is
// done under logMu: a writer replaced by a reload is closed only after
// the swap, and nobody can still be writing to it then.
func (a *Auditor) record(r Record) {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	if a.log != nil {
		a.log.Write(r)
	}
}

// Start registers the auditor's observers and places the marks its policy
// needs. marker nil means fanotify is unavailable: the policy is loaded
// and shown, nothing is enforced, and why is reported once. Call it on the
// loop goroutine or before the loop runs.
func (a *Auditor) Start(marker Marker, why string) error {
	a.marker = marker
	if marker == nil {
		a.unavailable = why
		if a.policy.Load() != nil {
			a.logf("audit: fanotify is unavailable (%s): the audit policy is not enforced", why)
		}
	}
	if err := a.registerControl(); err != nil {
		return err
	}
	a.apply(a.policy.Load())
	return nil
}

// Stop unregisters the observers, removes the marks and flushes the log.
// Call it on the loop goroutine.
func (a *Auditor) Stop() {
	if a.watcher != nil {
		a.watcher.close()
		a.watcher = nil
	}
	if a.observer != 0 {
		a.opts.Loop.Unregister(a.observer)
		a.observer = 0
	}
	for _, id := range a.controlObs {
		a.opts.Loop.Unregister(id)
	}
	a.controlObs = nil
	for t, m := range a.marks {
		if m.unmark != nil {
			m.unmark()
		}
		delete(a.marks, t)
	}
	a.stopOnce.Do(func() { close(a.stop) })
	for _, k := range a.keepers {
		k.Stop() // one waiting to restart would otherwise sit out its backoff
	}
	a.workers.Wait()
	// Inline decisions still queued are let through, as the fanotify
	// source does with everything it holds when it closes.
	for {
		select {
		case job := <-a.inlineQ:
			job.answer(observer.Allow)
			continue
		default:
		}
		break
	}
	a.logMu.Lock()
	w := a.log
	a.log = nil
	a.logMu.Unlock()
	if w != nil {
		w.Close()
	}
}

// apply makes the loop registration and the marks fit policy p.
func (a *Auditor) apply(p *Policy) {
	loop := a.opts.Loop
	if p == nil || a.marker == nil || len(p.Rules) == 0 {
		if a.observer != 0 {
			loop.Unregister(a.observer)
			a.observer = 0
		}
		a.syncMarks(MarkSet{})
		return
	}
	timeoutVerdict := p.TimeoutVerdict
	if p.Mode == Permissive {
		timeoutVerdict = observer.Allow
	}
	if a.observer == 0 || a.obsTimeout != p.DecisionTimeout || a.obsDefault != timeoutVerdict {
		id, err := loop.Register(observer.Observer{
			Guest: GuestName, Name: "exec and open decisions",
			Filter: observer.Filter{Terms: []observer.Term{
				{Key: "source", Op: observer.OpEq, Values: []string{"fanotify"}},
				{Key: "kind", Op: observer.OpEq, Values: []string{"exec", "open"}}}},
			Notify:      a.onEvent,
			Decides:     true,
			HoldTimeout: p.DecisionTimeout,
			HoldDefault: timeoutVerdict,
		})
		if err != nil {
			a.logf("audit: %v", err)
		} else {
			// The new observer first: a hold dispatched meanwhile is judged
			// by one of them. Holds still waiting on the old one take its
			// default when it goes.
			if a.observer != 0 {
				loop.Unregister(a.observer)
			}
			a.observer, a.obsTimeout, a.obsDefault = id, p.DecisionTimeout, timeoutVerdict
		}
	}
	a.syncMarks(p.Marks())
}

// syncMarks places new marks before removing old ones, so that a path
// both policies watch is never unwatched in between.
func (a *Auditor) syncMarks(want MarkSet) {
	for t, acc := range want {
		cur, ok := a.marks[t]
		if ok && cur.access == acc {
			continue
		}
		st := markState{access: acc}
		unmark, err := a.marker.Mark(t.Path, acc, t.Tree)
		if err != nil {
			st.err = err.Error()
			a.logf("audit: cannot watch %s: %v", t.Path, err)
		} else {
			st.unmark = unmark
		}
		a.marks[t] = st
		if ok && cur.unmark != nil {
			cur.unmark()
		}
	}
	for t, cur := range a.marks {
		if _, ok := want[t]; ok {
			continue
		}
		if cur.unmark != nil {
			cur.unmark()
		}
		delete(a.marks, t)
	}
}

// Reload reads the policy file again. On error the running policy stays
// and the error (file:line) is returned and kept for status; a missing
// file is an error only when a policy is in force. Call it on the loop
// goroutine.
func (a *Auditor) Reload() error {
	p, err := LoadPolicy(a.opts.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) && a.policy.Load() == nil {
		// Still no policy: nothing to audit, nothing to report.
		return nil
	}
	if err != nil {
		a.reloadFail.Add(1)
		a.lastError = err.Error()
		a.logf("audit: reload: %v (keeping the rules in force)", err)
		return err
	}
	a.reloads.Add(1)
	a.lastError = ""
	a.policy.Store(p)
	a.setLog(p)
	a.apply(p)
	a.logf("audit: loaded %s: %d rules, %s mode", p.Source, len(p.Rules), p.Mode)
	return nil
}

// relevant tells whether the auditor judges the request: it came through
// one of the policy's marks, or one of its rules names it. Accesses that
// only other guests watch (path units) are not the auditor's business,
// and its default does not apply to them. It reads only the immutable
// policy, so Inline uses it too.
func relevant(p *Policy, req *AccessRequest) bool {
	if p.markPaths[req.Mark]&req.Access != 0 {
		return true
	}
	for _, r := range p.Rules {
		if r.matchesSubject(req) {
			return true
		}
	}
	return false
}

// onEvent judges one held fanotify event, on the loop goroutine.
func (a *Auditor) onEvent(ev *observer.Event) {
	if ev.Hold == nil {
		return
	}
	obs := a.observer
	p := a.policy.Load()
	req := requestOf(ev)
	if p == nil || req.Access == 0 || !relevant(p, &req) {
		a.answer(ev, obs, observer.Allow)
		return
	}
	d, needHash := p.Evaluate(&req, nil)
	if !needHash {
		a.finish(ev, obs, p, &req, &d, "loop")
		return
	}
	select {
	case a.jobs <- hashJob{ev: ev, req: req, policy: p, obs: obs}:
	default:
		// Too many digests pending: do not queue more work behind them.
		a.busy.Add(1)
		v := a.obsDefault
		a.record(a.recordOf(p, &req, "busy", "", v, "loop"))
		a.answer(ev, obs, v)
	}
}

func (a *Auditor) answer(ev *observer.Event, obs observer.ObserverID, v observer.Verdict) bool {
	return a.opts.Loop.Answer(ev.Hold.ID, obs, v) == nil
}

// finish counts, records and answers a decision.
func (a *Auditor) finish(ev *observer.Event, obs observer.ObserverID, p *Policy, req *AccessRequest, d *Decision, via string) {
	v := a.account(p, req, d, via)
	if !a.answer(ev, obs, v) {
		// The decision timeout passed (or a reload replaced the observer):
		// the loop answered with the timeout-verdict already.
		a.late.Add(1)
		a.record(a.recordOf(p, req, "timeout", "", a.obsDefault, "late"))
	}
}

// account counts and records a decision and gives the verdict to carry
// out (allow in permissive mode).
func (a *Auditor) account(p *Policy, req *AccessRequest, d *Decision, via string) observer.Verdict {
	a.decisions.Add(1)
	d.countHits()
	v := d.Verdict
	switch {
	case v == observer.Deny && p.Mode == Permissive:
		a.wouldDeny.Add(1)
		a.allowed.Add(1)
	case v == observer.Deny:
		a.denied.Add(1)
	default:
		a.allowed.Add(1)
	}
	if d.Recorded() {
		var logged []string
		for _, r := range d.Logged {
			logged = append(logged, r.Name)
		}
		a.record(a.recordOf(p, req, d.RuleName(), strings.Join(logged, ","), d.Verdict, via))
	}
	if p.Mode == Permissive {
		return observer.Allow
	}
	return v
}

func (a *Auditor) recordOf(p *Policy, req *AccessRequest, rule, logged string, v observer.Verdict, via string) Record {
	uid := ""
	if req.HasUID {
		uid = strconv.FormatUint(uint64(req.UID), 10)
	}
	return Record{Time: time.Now(), PID: req.PID, Exe: req.Exe, UID: uid, Unit: req.Unit, Path: req.Path,
		Access: req.Access.String(), Rule: rule, Logged: logged, Verdict: v.String(), Mode: string(p.Mode), Via: via}
}

// keep runs worker under observer.Keep until Stop; a.workers counts it
// until it is gone for good.
func (a *Auditor) keep(what string, worker func()) {
	a.workers.Add(1)
	k := observer.Keep(what, observer.KeepOptions{Logf: a.opts.Logf}, func() error { worker(); return nil })
	a.keepers = append(a.keepers, k)
	go func() { <-k.Done(); a.workers.Done() }()
}

// WorkerStats say how the hash workers stand (restarts, last failure).
func (a *Auditor) WorkerStats() []observer.KeeperStats {
	out := make([]observer.KeeperStats, 0, len(a.keepers))
	for _, k := range a.keepers {
		out = append(out, k.Stats())
	}
	return out
}

func (a *Auditor) hashWorker() {
	for {
		select {
		case <-a.stop:
			return
		case job := <-a.jobs:
			h := a.hashFile(job.req.Path)
			if h.err != nil {
				a.hashErrors.Add(1)
			}
			a.opts.Loop.Do(func() {
				d, _ := job.policy.Evaluate(&job.req, &h)
				a.finish(job.ev, job.obs, job.policy, &job.req, &d, "loop")
			})
		}
	}
}

// InlineLater judges an event of Vigil's own children before their exec,
// like Inline, but never digests a file on the fanotify reader: a digest
// the cache has for the file as it is now (found by a stat, which opens
// nothing) decides at once; a miss goes to the inline worker, which
// digests, decides and calls answer, while the reader goes on with every
// other event. Pass it as fanotify Options.InlineLater.
//
// What decides where, and why:
//   - the reader only stats: hashing there stalled every marked access on
//     the machine behind one large binary, and opening the file there for
//     a rule on an open-marked path would raise a permission event only
//     the blocked reader itself could answer;
//   - the inline worker opens and reads the file: its opens are Vigil's
//     own, exempted by the reader at once, and it waits on neither the
//     reader nor the loop, so the loop may well be waiting for this exec;
//   - with the worker's queue full the timeout-verdict answers at once
//     (counted as busy), as on the loop;
//   - an answer that never comes is the fanotify source's backstop.
func (a *Auditor) InlineLater(ev *observer.Event, answer func(observer.Verdict)) (observer.Verdict, bool) {
	p := a.policy.Load()
	if p == nil {
		return observer.Allow, true
	}
	req := requestOf(ev)
	if req.Access == 0 || !relevant(p, &req) {
		return observer.Allow, true
	}
	a.inline.Add(1)
	d, needHash := p.Evaluate(&req, nil)
	if needHash {
		h, ok := a.hashes.cached(req.Path)
		if !ok {
			select {
			case a.inlineQ <- inlineJob{req: req, policy: p, answer: answer}:
				return 0, false
			default:
				a.busy.Add(1)
				v := p.TimeoutVerdict
				if p.Mode == Permissive {
					v = observer.Allow
				}
				a.record(a.recordOf(p, &req, "busy", "", v, "inline"))
				return v, true
			}
		}
		d, _ = p.Evaluate(&req, &h)
	}
	return a.account(p, &req, &d, "inline"), true
}

func (a *Auditor) inlineWorker() {
	for {
		select {
		case <-a.stop:
			return
		case job := <-a.inlineQ:
			a.inlineDecide(job)
		}
	}
}

// inlineDecide digests and answers one inline job. A panic on the way
// still answers, with the policy's timeout verdict (what the held exec
// would get had the worker been stuck), before it restarts the worker.
func (a *Auditor) inlineDecide(job inlineJob) {
	answered := false
	defer func() {
		if !answered {
			job.answer(job.policy.TimeoutVerdict)
		}
	}()
	h := a.hashFile(job.req.Path)
	if h.err != nil {
		a.hashErrors.Add(1)
	}
	d, _ := job.policy.Evaluate(&job.req, &h)
	v := a.account(job.policy, &job.req, &d, "inline")
	answered = true
	job.answer(v)
}

// Inline judges an event on the fanotify reader's goroutine, without the
// loop: the source calls it for Vigil's own children that have not yet
// exec'd their program (the loop may be waiting for that very exec). It
// reads the current policy snapshot, digests files itself when a rule
// needs it (on the reader: prefer InlineLater, which does not), and never
// blocks on the loop. Pass it as fanotify Options.Inline.
func (a *Auditor) Inline(ev *observer.Event) observer.Verdict {
	p := a.policy.Load()
	if p == nil {
		return observer.Allow
	}
	req := requestOf(ev)
	if req.Access == 0 || !relevant(p, &req) {
		return observer.Allow
	}
	a.inline.Add(1)
	d, needHash := p.Evaluate(&req, nil)
	if needHash {
		h := a.hashFile(req.Path)
		if h.err != nil {
			a.hashErrors.Add(1)
		}
		d, _ = p.Evaluate(&req, &h)
	}
	return a.account(p, &req, &d, "inline")
}

// Counters gives the totals so far; safe from any goroutine.
func (a *Auditor) Counters() Counters {
	c := Counters{Decisions: a.decisions.Load(), Allowed: a.allowed.Load(), Denied: a.denied.Load(),
		WouldDeny: a.wouldDeny.Load(), Inline: a.inline.Load(), Late: a.late.Load(), Busy: a.busy.Load(),
		HashErrors: a.hashErrors.Load(), Reloads: a.reloads.Load(), ReloadFail: a.reloadFail.Load(),
		HashHits: a.hashes.hits.Load(), HashMisses: a.hashes.misses.Load(), HashCached: a.hashes.len()}
	a.logMu.Lock()
	if w := a.log; w != nil {
		c.Logged, c.LogDropped, c.Rotations = w.written.Load(), w.dropped.Load(), w.rotations.Load()
	}
	a.logMu.Unlock()
	return c
}

// RuleStatus is one rule in `initctl audit status`.
type RuleStatus struct {
	Name   string `json:"name"`
	Line   int    `json:"line"`
	Access string `json:"access"`
	Action string `json:"action"`
	Hits   uint64 `json:"hits"`
}

// MarkStatus is one fanotify mark the auditor asked for.
type MarkStatus struct {
	Path   string `json:"path"`
	Tree   bool   `json:"tree,omitempty"`
	Access string `json:"access"`
	Error  string `json:"error,omitempty"`
}

// Status is what `initctl audit status` shows.
type Status struct {
	Config          string       `json:"config"`
	Loaded          bool         `json:"loaded"`
	LoadedAt        time.Time    `json:"loaded_at,omitzero"`
	Mode            string       `json:"mode,omitempty"`
	Default         string       `json:"default,omitempty"`
	DecisionTimeout string       `json:"decision_timeout,omitempty"`
	TimeoutVerdict  string       `json:"timeout_verdict,omitempty"`
	Log             string       `json:"log,omitempty"`
	Enforcing       bool         `json:"enforcing"`
	Unavailable     string       `json:"unavailable,omitempty"`
	LastError       string       `json:"last_error,omitempty"`
	Rules           []RuleStatus `json:"rules"`
	Marks           []MarkStatus `json:"marks"`
	Counters        Counters     `json:"counters"`
}

// Status describes the auditor; call it on the loop goroutine.
func (a *Auditor) Status() Status {
	st := Status{Config: a.opts.ConfigPath, Unavailable: a.unavailable, LastError: a.lastError,
		Rules: []RuleStatus{}, Marks: []MarkStatus{}, Counters: a.Counters()}
	if p := a.policy.Load(); p != nil {
		st.Loaded, st.LoadedAt, st.Mode, st.Default = true, p.Loaded, string(p.Mode), p.Default.String()
		st.DecisionTimeout, st.TimeoutVerdict, st.Log = p.DecisionTimeout.String(), p.TimeoutVerdict.String(), p.Log
		st.Enforcing = a.marker != nil && a.observer != 0 && p.Mode == Enforce
		for _, r := range p.Rules {
			st.Rules = append(st.Rules, RuleStatus{Name: r.Name, Line: r.Line, Access: r.Access.String(), Action: string(r.Action), Hits: r.hits.Load()})
		}
	}
	for t, m := range a.marks {
		st.Marks = append(st.Marks, MarkStatus{Path: t.Path, Tree: t.Tree, Access: m.access.String(), Error: m.err})
	}
	sort.Slice(st.Marks, func(i, j int) bool { return st.Marks[i].Path < st.Marks[j].Path })
	return st
}

// String of a status line for the manager's log.
func (s Status) String() string {
	return fmt.Sprintf("audit: %s, %d rules, mode %s", s.Config, len(s.Rules), s.Mode)
}
