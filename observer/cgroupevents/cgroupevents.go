// Package cgroupevents is the observer's cgroup source: it watches the
// cgroup.events and memory.events files of the cgroup2 groups it is told
// about (inotify IN_MODIFY, which the kernel raises when their contents
// change) and posts events of source "cgroup":
//
//   - kind "empty" when a group's "populated" reads 0 after a change: its
//     last process is gone. It is posted on every such change, not only on
//     a transition the source saw, since a short-lived process can come and
//     go between two reads; guests treat it as "check now".
//   - kind "oom" when memory.events' oom_kill count grew: the kernel's OOM
//     killer killed a process of the group.
//
// Each event carries the attributes "path" (the group's directory), "unit"
// (the name given to Watch) and, for oom, "oom_kill" (the new count). The
// package does not poll; it needs nothing of Vigil but the observer.
package cgroupevents

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// SourceName is the Source (and Event.Source) of the posted events.
const SourceName = "cgroup"

// Watcher watches groups. Its methods are safe from any goroutine.
type Watcher struct {
	file   *os.File
	source *observer.Source

	mu    sync.Mutex
	byWD  map[int32]*group
	byDir map[string]*group
	done  chan struct{}
	// reader runs run, again after a panic (observer.Keep); runs counts
	// its runs (owned by the reader goroutine).
	reader *observer.Keeper
	runs   int
}

type group struct {
	dir, unit string
	eventsWD  int32
	memoryWD  int32
	oomKills  uint64
	hasMemory bool
}

// Start opens the inotify instance and begins posting into loop.
func Start(loop *observer.Loop) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cgroup events: inotify: %w", err)
	}
	w := &Watcher{
		// A non-blocking fd in os.File goes through the runtime's poller,
		// so Close wakes the reader.
		file: os.NewFile(uintptr(fd), "cgroup-inotify"),
		// Empty and OOM events must not be lost, and there are at most a
		// few per unit start: the queue is unbounded.
		source: loop.NewSource(SourceName, 0),
		byWD:   map[int32]*group{},
		byDir:  map[string]*group{},
		done:   make(chan struct{}),
	}
	w.reader = w.source.Keep("cgroup events watcher", observer.KeepOptions{}, w.run)
	go func() { <-w.reader.Done(); close(w.done) }()
	return w, nil
}

// Watch starts watching the group at dir (an absolute cgroup2 directory)
// on behalf of unit. Watching a watched directory again only renames it.
func (w *Watcher) Watch(dir, unit string) error {
	dir = filepath.Clean(dir)
	w.mu.Lock()
	defer w.mu.Unlock()
	if g := w.byDir[dir]; g != nil {
		g.unit = unit
		return nil
	}
	fd := w.fd()
	ewd, err := unix.InotifyAddWatch(fd, filepath.Join(dir, "cgroup.events"), unix.IN_MODIFY)
	if err != nil {
		return fmt.Errorf("watch %s/cgroup.events: %w", dir, err)
	}
	g := &group{dir: dir, unit: unit, eventsWD: int32(ewd), memoryWD: -1}
	if data, err := os.ReadFile(filepath.Join(dir, "memory.events")); err == nil {
		g.hasMemory = true
		g.oomKills = keyed(string(data), "oom_kill")
		if mwd, err := unix.InotifyAddWatch(fd, filepath.Join(dir, "memory.events"), unix.IN_MODIFY); err == nil {
			g.memoryWD = int32(mwd)
			w.byWD[g.memoryWD] = g
		}
	}
	w.byWD[g.eventsWD] = g
	w.byDir[dir] = g
	return nil
}

// Unwatch stops watching dir. Removing the group's directory also ends
// the watch; Unwatch is for groups that stay.
func (w *Watcher) Unwatch(dir string) {
	dir = filepath.Clean(dir)
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.byDir[dir]
	if g == nil {
		return
	}
	w.forget(g)
	fd := w.fd()
	unix.InotifyRmWatch(fd, uint32(g.eventsWD))
	if g.memoryWD >= 0 {
		unix.InotifyRmWatch(fd, uint32(g.memoryWD))
	}
}

// Watching lists the watched directories (for tests and status).
func (w *Watcher) Watching() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.byDir))
	for d := range w.byDir {
		out = append(out, d)
	}
	return out
}

func (w *Watcher) forget(g *group) {
	delete(w.byDir, g.dir)
	delete(w.byWD, g.eventsWD)
	if g.memoryWD >= 0 {
		delete(w.byWD, g.memoryWD)
	}
}

func (w *Watcher) fd() int {
	var fd int
	if rc, err := w.file.SyscallConn(); err == nil {
		rc.Control(func(raw uintptr) { fd = int(raw) })
	}
	return fd
}

// Close stops the watcher and waits for its goroutine.
func (w *Watcher) Close() error {
	w.reader.Stop()
	err := w.file.Close()
	<-w.done
	return err
}

// run reads until Close (nil). After a panic observer.Keep runs it again,
// and the new run checks every watched group first: the records the
// failed run had read (a group emptied, an OOM kill) must not be lost.
func (w *Watcher) run() error {
	if w.runs++; w.runs > 1 {
		w.mu.Lock()
		wds := make([]int32, 0, len(w.byWD))
		for wd := range w.byWD {
			wds = append(wds, wd)
		}
		w.mu.Unlock()
		for _, wd := range wds {
			w.check(wd)
		}
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			continue
		}
		w.handle(buf[:n])
	}
}

// handle reads a batch of inotify records. Several changes of one file in
// a batch need one read of it.
func (w *Watcher) handle(buf []byte) {
	changed := map[int32]bool{}
	var order []int32
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if ev.Mask&unix.IN_IGNORED != 0 {
			w.mu.Lock()
			if g := w.byWD[ev.Wd]; g != nil {
				w.forget(g)
			}
			w.mu.Unlock()
			continue
		}
		if ev.Mask&unix.IN_MODIFY != 0 && !changed[ev.Wd] {
			changed[ev.Wd] = true
			order = append(order, ev.Wd)
		}
	}
	for _, wd := range order {
		w.check(wd)
	}
}

func (w *Watcher) check(wd int32) {
	w.mu.Lock()
	g := w.byWD[wd]
	if g == nil {
		w.mu.Unlock()
		return
	}
	dir, unit, isMemory := g.dir, g.unit, wd == g.memoryWD
	w.mu.Unlock()
	if isMemory {
		data, err := os.ReadFile(filepath.Join(dir, "memory.events"))
		if err != nil {
			return
		}
		n := keyed(string(data), "oom_kill")
		w.mu.Lock()
		grew := n > g.oomKills
		g.oomKills = n
		w.mu.Unlock()
		if grew {
			w.source.Post(observer.Event{Kind: "oom", Attrs: map[string]string{"path": dir, "unit": unit, "oom_kill": strconv.FormatUint(n, 10)}})
		}
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return
	}
	if keyed(string(data), "populated") == 0 {
		w.source.Post(observer.Event{Kind: "empty", Attrs: map[string]string{"path": dir, "unit": unit}})
	}
}

// keyed reads one key of a flat keyed cgroup file ("populated 1\n").
func keyed(data, key string) uint64 {
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			// Out of range is as unreadable as not a number: ParseUint's
			// MaxUint64 for it would look like a burst of OOM kills.
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0
			}
			return n
		}
	}
	return 0
}
