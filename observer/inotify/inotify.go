// Package inotify is the observer's file-change source: one inotify
// descriptor shared by many independent watches, read by one goroutine that
// posts events of source "inotify" into the loop.
//
// The kernel keeps one watch descriptor per inode and inotify descriptor,
// and a second inotify_add_watch on the same inode replaces the first
// one's mask. The Watcher therefore reference-counts: every Add returns its
// own WatchID with its own mask, the kernel is asked for the union of the
// masks of an inode's watches, and each event is handed only to the watches
// whose mask asked for it. Remove recomputes the union.
//
// Events posted to the loop: Source "inotify", Kind "change" for a record of
// a watched object, "overflow" when the kernel's queue overflowed (events
// were lost: guests re-check what they watch). Attributes "path" (the
// watched path, joined with the record's name for an entry of a watched
// directory), "watched" (the path given to Add), "name" and "mask"
// (MaskString). Payload is a *Change naming the interested WatchIDs.
//
// The package imports nothing of Vigil but the observer core.
package inotify

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// SourceName is the Source (and Event.Source) of the posted events.
const SourceName = "inotify"

// WatchID names one Add.
type WatchID uint64

// Change is the Payload of a posted event.
type Change struct {
	// Watches are the watches whose mask asked for this record (every
	// watch, for an overflow).
	Watches []WatchID
	Record  Record
	// Path is the watched path, joined with Record.Name if it has one.
	Path string
}

// Options configure a Watcher.
type Options struct {
	// QueueLimit bounds the loop source; default 1024. An event dropped at
	// a full queue is counted by the loop's source statistics; the watcher
	// then posts an "overflow" once there is room, so guests re-check.
	QueueLimit int
	Logf       func(format string, args ...any)
}

// Watcher owns one inotify descriptor. Its methods are safe from any
// goroutine.
type Watcher struct {
	fd     int
	stop   [2]int
	source *observer.Source
	logf   func(string, ...any)
	reader *observer.Keeper
	once   sync.Once
	// runs counts the reader's runs (owned by the reader goroutine): a
	// restarted reader lost what it had read, and says so.
	runs int
	// afterRead, when set, sees each buffer read: tests make it panic to
	// show that the reader comes back.
	afterRead atomic.Pointer[func()]

	mu      sync.Mutex
	next    WatchID
	byID    map[WatchID]*watch
	byWD    map[int32]*inode
	lost    bool // a post was dropped: send an overflow when possible
	records uint64
}

type watch struct {
	id   WatchID
	path string
	mask uint32
	wd   int32
}

// inode is one kernel watch descriptor and the watches sharing it.
type inode struct {
	wd      int32
	path    string // the path the kernel watch was last (re)added with
	watches map[WatchID]*watch
	mask    uint32 // the union last given to the kernel
}

// Open creates the inotify descriptor and starts reading.
func Open(loop *observer.Loop, opts Options) (*Watcher, error) {
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = 1024
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: init: %w", err)
	}
	w := &Watcher{fd: fd, logf: opts.Logf, byID: map[WatchID]*watch{}, byWD: map[int32]*inode{}}
	if err := unix.Pipe2(w.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify: pipe: %w", err)
	}
	w.source = loop.NewSource(SourceName, opts.QueueLimit)
	// A reader that panicked or failed is run again (observer.Keep): the
	// descriptor and the watches outlive it.
	w.reader = w.source.Keep("inotify reader", observer.KeepOptions{Logf: w.logf}, w.run)
	return w, nil
}

// Add watches path for the events in mask (IN_* bits; IN_MASK_ADD and
// IN_ONESHOT are refused, the watcher manages the kernel mask itself).
// IN_DONT_FOLLOW and IN_ONLYDIR apply to this lookup. A path that does not
// exist fails with an error wrapping ENOENT.
func (w *Watcher) Add(path string, mask uint32) (WatchID, error) {
	if mask&(unix.IN_MASK_ADD|unix.IN_ONESHOT) != 0 {
		return 0, fmt.Errorf("inotify: watch %s: IN_MASK_ADD and IN_ONESHOT are managed by the watcher", path)
	}
	path = filepath.Clean(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	// IN_MASK_ADD keeps what other watches of the same inode asked for;
	// the returned wd tells which inode this path is.
	wd, err := unix.InotifyAddWatch(w.fd, path, mask|unix.IN_MASK_ADD)
	if err != nil {
		return 0, fmt.Errorf("inotify: watch %s: %w", path, err)
	}
	ino := w.byWD[int32(wd)]
	if ino == nil {
		ino = &inode{wd: int32(wd), watches: map[WatchID]*watch{}}
		w.byWD[int32(wd)] = ino
	}
	ino.path = path
	ino.mask |= mask &^ (unix.IN_DONT_FOLLOW | unix.IN_ONLYDIR)
	w.next++
	wt := &watch{id: w.next, path: path, mask: mask, wd: int32(wd)}
	ino.watches[wt.id] = wt
	w.byID[wt.id] = wt
	return wt.id, nil
}

// Remove drops a watch; unknown IDs are ignored. The kernel watch goes when
// its last watch does; otherwise it is narrowed to what the others ask.
func (w *Watcher) Remove(id WatchID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt := w.byID[id]
	if wt == nil {
		return
	}
	delete(w.byID, id)
	ino := w.byWD[wt.wd]
	if ino == nil {
		return
	}
	delete(ino.watches, id)
	if len(ino.watches) == 0 {
		delete(w.byWD, ino.wd)
		unix.InotifyRmWatch(w.fd, uint32(ino.wd))
		return
	}
	var union uint32
	for _, o := range ino.watches {
		union |= o.mask &^ (unix.IN_DONT_FOLLOW | unix.IN_ONLYDIR)
	}
	if union == ino.mask {
		return
	}
	// Re-adding without IN_MASK_ADD replaces the mask. If the path now
	// names another inode (renamed meanwhile), the narrowed mask would land
	// on the wrong one: keep the wider mask then, which costs only
	// unwanted events that Deliver filters out.
	if wd, err := unix.InotifyAddWatch(w.fd, ino.path, union); err == nil {
		if int32(wd) == ino.wd {
			ino.mask = union
		} else if w.byWD[int32(wd)] == nil {
			unix.InotifyRmWatch(w.fd, uint32(wd))
		}
	}
}

// Watches reports how many watches and kernel watch descriptors are live.
func (w *Watcher) Watches() (watches, descriptors int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byID), len(w.byWD)
}

// Close stops reading and closes the descriptor. Pending events are lost.
func (w *Watcher) Close() {
	w.once.Do(func() {
		w.reader.Stop()
		unix.Write(w.stop[1], []byte{1})
		<-w.reader.Done()
		unix.Close(w.fd)
		unix.Close(w.stop[0])
		unix.Close(w.stop[1])
	})
}

// run reads until Close (returning nil) or a failure (an error, or a
// panic), after which observer.Keep runs it again.
func (w *Watcher) run() error {
	if w.runs++; w.runs > 1 {
		// Records read by the failed run may be lost: guests re-check.
		w.mu.Lock()
		w.lost = true
		w.mu.Unlock()
		w.deliver(nil)
	}
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.stop[0]), Events: unix.POLLIN}}
	// Room for many records: the kernel returns whole records only, and at
	// least one (NAME_MAX+1 bytes of name) must fit.
	buf := make([]byte, 64*1024)
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("inotify: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		for {
			n, err := unix.Read(w.fd, buf)
			if err != nil || n <= 0 {
				break
			}
			if hook := w.afterRead.Load(); hook != nil {
				(*hook)()
			}
			recs, perr := ParseRecords(buf[:n])
			if perr != nil {
				w.log("inotify: %v", perr)
			}
			w.deliver(recs)
		}
	}
}

func (w *Watcher) log(format string, args ...any) {
	if w.logf != nil {
		w.logf(format, args...)
	}
}

// deliver resolves records to watches and posts them.
func (w *Watcher) deliver(recs []Record) {
	for _, ev := range w.resolve(recs) {
		if !w.source.Post(ev) {
			w.mu.Lock()
			w.lost = true
			w.mu.Unlock()
		}
	}
}

// resolve turns records into events under mu (released by a defer, so a
// panic here cannot leave the watcher locked for the restarted reader).
func (w *Watcher) resolve(recs []Record) []observer.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []observer.Event
	if w.lost {
		out = append(out, w.overflowEvent())
		w.lost = false
	}
	for _, r := range recs {
		w.records++
		if r.Mask&unix.IN_Q_OVERFLOW != 0 {
			out = append(out, w.overflowEvent())
			continue
		}
		ino := w.byWD[r.WD]
		if ino == nil {
			continue // removed meanwhile
		}
		var ids []WatchID
		var watched string
		for id, wt := range ino.watches {
			// IN_IGNORED (the inode is gone or unmounted) and IN_UNMOUNT
			// concern every watch of the inode.
			if r.Mask&wt.mask != 0 || r.Mask&(unix.IN_IGNORED|unix.IN_UNMOUNT) != 0 {
				ids = append(ids, id)
				watched = wt.path
			}
		}
		if r.Mask&unix.IN_IGNORED != 0 {
			// The kernel dropped the watch: forget it, so that its wd,
			// which the kernel may hand out again, starts afresh.
			for id := range ino.watches {
				delete(w.byID, id)
			}
			delete(w.byWD, r.WD)
		}
		if len(ids) == 0 {
			continue
		}
		sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
		p := watched
		if r.Name != "" {
			p = filepath.Join(watched, r.Name)
		}
		out = append(out, observer.Event{Kind: "change",
			Attrs:   map[string]string{"path": p, "watched": watched, "name": r.Name, "mask": MaskString(r.Mask)},
			Payload: &Change{Watches: ids, Record: r, Path: p}})
	}
	return out
}

// overflowEvent tells every watch that events were lost. Called with mu.
func (w *Watcher) overflowEvent() observer.Event {
	ids := make([]WatchID, 0, len(w.byID))
	for id := range w.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return observer.Event{Kind: "overflow", Attrs: map[string]string{"mask": "overflow"},
		Payload: &Change{Watches: ids, Record: Record{WD: -1, Mask: unix.IN_Q_OVERFLOW}}}
}
