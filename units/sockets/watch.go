package sockets

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Watcher waits for a unit's listeners to become readable (a connection in
// the backlog, a datagram, data in a FIFO) without accepting or reading
// anything. The first readable listener posts one event, source "socket",
// kind "readable", attributes unit, fd (the fd number in the manager),
// index (the listener's position), listen (its kind) and address, with the
// *Listener as Payload. Then the whole unit is paused: no further events
// until Resume, so the service can take the fds over while connections
// wait in the kernel.
//
// It uses Go's netpoller through each File's SyscallConn: no thread is
// parked per socket.
type Watcher struct {
	source *observer.Source
	// loop is set when the watcher made its source (Watch): Close then
	// removes it from the loop.
	loop      *observer.Loop
	unit      string
	listeners []*Listener

	mu      sync.Mutex
	paused  bool
	closed  bool
	resumed chan struct{} // closed by Resume to wake the waiters
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Watch starts watching listeners with a new source named "socket" on
// loop; Close removes that source again. A manager with many socket units
// may rather make one source and share it with WatchOn.
func Watch(loop *observer.Loop, listeners []*Listener, unit string) *Watcher {
	w := WatchOn(loop.NewSource("socket", 0), listeners, unit)
	w.loop = loop
	return w
}

// WatchOn starts watching listeners, posting to source. At most one event
// is queued per Resume, so an unbounded source stays small.
func WatchOn(source *observer.Source, listeners []*Listener, unit string) *Watcher {
	w := &Watcher{source: source, unit: unit, listeners: listeners, resumed: make(chan struct{}), stop: make(chan struct{})}
	for i, l := range listeners {
		w.wg.Add(1)
		go w.watch(i, l)
	}
	return w
}

// Paused reports whether an event was posted and Resume not yet called.
func (w *Watcher) Paused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.paused
}

// Resume watches again, after the service that took the fds has gone. A
// listener with connections still waiting fires again at once.
func (w *Watcher) Resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.paused || w.closed {
		return
	}
	w.paused = false
	close(w.resumed)
	w.resumed = make(chan struct{})
}

// Close stops watching and waits for the watching goroutines; a source
// that Watch made leaves the loop. The listeners stay open: they belong to
// the caller.
func (w *Watcher) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.stop)
	w.mu.Unlock()
	// A deadline in the past wakes a goroutine parked in the netpoller.
	for _, l := range w.listeners {
		l.File.SetReadDeadline(time.Unix(1, 0))
	}
	w.wg.Wait()
	for _, l := range w.listeners {
		l.File.SetReadDeadline(time.Time{})
	}
	if w.loop != nil {
		w.loop.RemoveSource(w.source)
	}
}

// waitRunning blocks while the unit is paused; false means stop.
func (w *Watcher) waitRunning() bool {
	for {
		w.mu.Lock()
		closed, paused, resumed := w.closed, w.paused, w.resumed
		w.mu.Unlock()
		if closed {
			return false
		}
		if !paused {
			return true
		}
		select {
		case <-resumed:
		case <-w.stop:
			return false
		}
	}
}

func (w *Watcher) watch(index int, l *Listener) {
	defer w.wg.Done()
	rc, err := l.File.SyscallConn()
	if err != nil {
		return
	}
	for w.waitRunning() {
		err := rc.Read(func(fd uintptr) bool { return readable(int(fd)) })
		select {
		case <-w.stop:
			return
		default:
		}
		if err != nil && !errors.Is(err, os.ErrNoDeadline) {
			// Not in the netpoller (a regular file via listen-special):
			// poll(2) with a timeout, so Close is still heard.
			if !w.pollSlowly(rc) {
				return
			}
		}
		w.fire(index, l)
	}
}

// pollSlowly waits for readability of a file the netpoller cannot watch.
func (w *Watcher) pollSlowly(rc interface{ Control(func(uintptr)) error }) bool {
	for {
		ready := false
		rc.Control(func(fd uintptr) {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 200)
			ready = n == 1
		})
		select {
		case <-w.stop:
			return false
		default:
		}
		if ready {
			return true
		}
	}
}

// fire posts the unit's one event, unless another listener was first.
func (w *Watcher) fire(index int, l *Listener) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused || w.closed {
		return
	}
	w.paused = true
	w.source.Post(observer.Event{Kind: "readable", Attrs: map[string]string{
		"unit":    w.unit,
		"fd":      strconv.Itoa(l.FD()),
		"index":   strconv.Itoa(index),
		"listen":  string(l.Kind),
		"address": l.Address.String(),
	}, Payload: l})
}

// readable asks the kernel, without consuming anything, whether fd has a
// connection or data waiting.
func readable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		return n == 1 && pfd[0].Revents&(unix.POLLIN|unix.POLLERR|unix.POLLHUP) != 0
	}
}
