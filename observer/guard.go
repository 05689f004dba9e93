package observer

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// Guard runs fn and turns a panic into a log line (with its stack) instead
// of the end of the process. Sources run their readers in goroutines of
// their own, outside the loop's recovery, and in PID 1 an unrecovered panic
// in any goroutine panics the kernel: every source goroutine runs under
// Guard (or Keep, which also runs it again). The goroutine stops; the rest
// of the machine goes on. A nil logf writes to stderr (the console, for
// PID 1).
func Guard(what string, logf func(format string, args ...any), fn func()) {
	_ = guarded(what, logf, func() error { fn(); return nil })
}

// guarded runs fn and turns a panic into a log line and an error.
func guarded(what string, logf func(format string, args ...any), fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			logOrStderr(logf)("%s stopped by a panic: %v\n%s", what, p, debug.Stack())
			err = &PanicError{Value: p}
		}
	}()
	return fn()
}

// logOrStderr is logf, or a writer to stderr when it is nil. A logf that
// panics itself (a closed log, a bug) is silenced: it runs where nothing
// else would recover the panic.
func logOrStderr(logf func(format string, args ...any)) func(format string, args ...any) {
	if logf == nil {
		return func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	return func(format string, args ...any) {
		defer func() { _ = recover() }()
		logf(format, args...)
	}
}

// PanicError is what Keep records for a run that ended in a panic.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// ErrCannotRestart, wrapped in the error a kept goroutine returns, says that
// running it again cannot help (its descriptor is gone for good, the kernel
// refuses the interface): Keep then gives up, loudly, and reports the
// source as failed.
var ErrCannotRestart = errors.New("cannot be restarted")

// Restart backoff: the first restart waits MinRestartDelay, each further
// one twice as long up to MaxRestartDelay. A run that lasted longer than
// MaxRestartDelay counts as healthy: the next failure starts again at the
// minimum.
const (
	MinRestartDelay = 100 * time.Millisecond
	MaxRestartDelay = 30 * time.Second
)

// KeepOptions configure Keep.
type KeepOptions struct {
	// Logf receives the failures, restarts and the giving up; nil writes
	// to stderr (the console, for PID 1).
	Logf func(format string, args ...any)
	// MinDelay and MaxDelay bound the backoff; zero means MinRestartDelay
	// and MaxRestartDelay. Tests shorten them.
	MinDelay, MaxDelay time.Duration
	// HealthyAfter is how long a run must last to count as healthy (the
	// next failure's backoff starts again at MinDelay); zero means
	// MaxDelay. Tests that shorten MaxDelay to milliseconds set it apart:
	// on a loaded machine a failing run alone can last that long.
	HealthyAfter time.Duration
}

// KeeperState is where a kept goroutine stands.
type KeeperState string

const (
	// KeeperRunning: its function runs (or is about to).
	KeeperRunning KeeperState = "running"
	// KeeperBackoff: it failed and waits to run again.
	KeeperBackoff KeeperState = "restarting"
	// KeeperStopped: its function returned nil, or Stop was called.
	KeeperStopped KeeperState = "stopped"
	// KeeperFailed: it returned an error wrapping ErrCannotRestart.
	KeeperFailed KeeperState = "failed"
)

// KeeperStats describe a kept goroutine for listings.
type KeeperStats struct {
	What     string      `json:"what"`
	State    KeeperState `json:"state"`
	Restarts uint64      `json:"restarts"`
	// LastError is the last failure ("" if it never failed) and
	// LastFailure when it happened.
	LastError   string    `json:"last_error,omitempty"`
	LastFailure time.Time `json:"last_failure,omitzero"`
}

// Keeper runs one goroutine of a source and runs it again when it fails.
// Create it with Keep or Source.Keep.
type Keeper struct {
	what string
	opts KeepOptions
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	stats KeeperStats
}

// Keep runs fn in a goroutine of its own, under Guard, and runs it again
// when it panics or returns an error, after a backoff (MinRestartDelay
// doubling to MaxRestartDelay): a source whose reader died would otherwise
// leave PID 1 deaf to that part of the machine (no uevents, no reaping).
// fn returning nil means it was asked to stop: it is not run again. An
// error wrapping ErrCannotRestart makes Keep give up and say so. fn must
// therefore be safe to call again after a failure: state it needs across
// runs (descriptors, buffers) lives outside it.
func Keep(what string, opts KeepOptions, fn func() error) *Keeper {
	if opts.MinDelay <= 0 {
		opts.MinDelay = MinRestartDelay
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = MaxRestartDelay
	}
	opts.MaxDelay = max(opts.MaxDelay, opts.MinDelay)
	if opts.HealthyAfter <= 0 {
		opts.HealthyAfter = opts.MaxDelay
	}
	k := &Keeper{what: what, opts: opts, stop: make(chan struct{}), done: make(chan struct{}),
		stats: KeeperStats{What: what, State: KeeperRunning}}
	go k.run(fn)
	return k
}

func (k *Keeper) run(fn func() error) {
	defer close(k.done)
	logf := logOrStderr(k.opts.Logf)
	delay := k.opts.MinDelay
	for {
		began := time.Now()
		err := guarded(k.what, k.opts.Logf, fn)
		if err == nil || k.stopping() {
			k.setState(KeeperStopped, nil)
			return
		}
		if errors.Is(err, ErrCannotRestart) {
			k.setState(KeeperFailed, err)
			logf("%s failed and cannot be restarted: %v; it stays down", k.what, err)
			return
		}
		if time.Since(began) > k.opts.HealthyAfter {
			delay = k.opts.MinDelay
		}
		k.setState(KeeperBackoff, err)
		logf("%s failed: %v; restarting in %v", k.what, err, delay)
		t := time.NewTimer(delay)
		select {
		case <-k.stop:
			t.Stop()
			k.setState(KeeperStopped, nil)
			return
		case <-t.C:
		}
		delay = min(2*delay, k.opts.MaxDelay)
		k.mu.Lock()
		k.stats.Restarts++
		k.stats.State = KeeperRunning
		k.mu.Unlock()
	}
}

func (k *Keeper) setState(s KeeperState, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stats.State = s
	if err != nil {
		k.stats.LastError = err.Error()
		k.stats.LastFailure = time.Now()
	}
}

func (k *Keeper) stopping() bool {
	select {
	case <-k.stop:
		return true
	default:
		return false
	}
}

// Stop ends the restarts: a run in progress is not interrupted (closing the
// source's descriptor does that), but it is not run again, whatever it
// returns. Call it before closing what the goroutine reads.
func (k *Keeper) Stop() { k.once.Do(func() { close(k.stop) }) }

// Done is closed when the goroutine has ended for good: stopped, returned
// nil, or given up.
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Stats report the keeper's state. Safe from any goroutine.
func (k *Keeper) Stats() KeeperStats {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stats
}
