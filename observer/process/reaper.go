// Package process is the observer's process-exit source: the one reaper of
// the manager. Every child and every orphan re-parented to the manager is
// collected here with wait4(-1) and turned into an "exit" event, so no other
// code in the process may wait for children (no os/exec Wait): there is
// exactly one place where exit statuses are taken, and none is stolen.
package process

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Exit is the Payload of an exit event.
type Exit struct {
	PID int
	// Code is the exit status when the process exited, else 0.
	Code int
	// Signal is the terminating signal when the process was killed, else 0.
	Signal     syscall.Signal
	CoreDumped bool
	Rusage     unix.Rusage
}

// Exited reports whether the process ended by exit(2) rather than a signal.
func (e Exit) Exited() bool { return e.Signal == 0 }

// String reads "status=1" or "signal=SIGKILL" (with " (core dumped)" when
// a core was written).
func (e Exit) String() string {
	if e.Signal != 0 {
		s := "signal=" + signalName(e.Signal)
		if e.CoreDumped {
			s += " (core dumped)"
		}
		return s
	}
	return "status=" + strconv.Itoa(e.Code)
}

// signalName is the signal's name, or its number for signals without one
// (the real-time signals): an attribute must never be empty.
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return strconv.Itoa(int(sig))
}

// Reaper collects exits. Create it with Start.
type Reaper struct {
	source *observer.Source
	sigs   chan os.Signal
	done   chan struct{}
	// beforeReap, when set, runs before each round of wait4: tests make
	// it panic to show that the reaper comes back.
	beforeReap atomic.Pointer[func()]
}

// Start makes the calling process a child subreaper (so double-forking
// daemons stay ours) unless it is PID 1 already, and begins collecting
// exits into the loop as events of source "process", kind "exit".
func Start(ctx context.Context, loop *observer.Loop) (*Reaper, error) {
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("become child subreaper: %w", err)
		}
	}
	r := &Reaper{
		// Exits must never be lost: the queue is unbounded.
		source: loop.NewSource("process", 0),
		sigs:   make(chan os.Signal, 1),
		done:   make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	// Without the reaper zombies pile up: a panic (in a Post, say) only
	// costs a restart, never the reaping. run has no error it cannot
	// recover from, so the keeper never gives up on it.
	k := r.source.Keep("process reaper", observer.KeepOptions{}, func() error { r.run(ctx); return nil })
	go func() {
		<-ctx.Done()
		k.Stop()
		<-k.Done()
		signal.Stop(r.sigs)
		close(r.done)
	}()
	return r, nil
}

// Done is closed when the reaper has stopped collecting (its context ended).
// Only then may other code in the process wait for children again.
func (r *Reaper) Done() <-chan struct{} { return r.done }

func (r *Reaper) run(ctx context.Context) {
	for {
		r.reapAll()
		select {
		case <-ctx.Done():
			return
		case <-r.sigs:
		}
	}
}

func (r *Reaper) reapAll() {
	if hook := r.beforeReap.Load(); hook != nil {
		(*hook)()
	}
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children left; 0: none has exited yet
		}
		if !ws.Exited() && !ws.Signaled() {
			continue // stopped or continued: not an exit
		}
		ex := Exit{PID: pid, Rusage: ru}
		attrs := map[string]string{"pid": strconv.Itoa(pid)}
		if ws.Signaled() {
			ex.Signal = ws.Signal()
			ex.CoreDumped = ws.CoreDump()
			attrs["signal"] = signalName(ex.Signal)
		} else {
			ex.Code = ws.ExitStatus()
			attrs["status"] = strconv.Itoa(ex.Code)
		}
		r.source.Post(observer.Event{Kind: "exit", Attrs: attrs, Payload: ex})
	}
}
