package fanotify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer/inotify"
)

// pathWatchMask is what the path watcher asks of every directory it
// watches: an entry of interest appearing (created, or renamed into place),
// going (deleted, renamed away), or the directory itself going. IN_ONLYDIR
// refuses a path that turned into a file meanwhile.
const pathWatchMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_MOVED_FROM |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// selfGone are the records about a watched directory itself (or the lost
// records of an overflow): every mark through it must be resolved again.
const selfGone = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT | unix.IN_Q_OVERFLOW

// pathWatch follows, with one inotify descriptor, the directory entries the
// marks depend on, so that the marks are resolved again as soon as a path
// component appears or goes, without polling: every component of a mark's
// path, in the directory above it, down to the path itself or to its first
// missing component (see watchPoints). A mark of /srv/a/b/file is resolved
// again when file, b, a or srv is deleted, renamed away or replaced.
//
// Its reader goroutine only turns records into Source.reresolve calls; it
// never touches the fanotify reader, which goes on answering meanwhile.
// A file two or more components below a pending mark's ancestor, created
// and opened at once, can still beat the re-mark by the few microseconds
// the watcher needs (the kernel reports no event for that open: see
// docs/fanotify.md); an open of the first missing component itself is
// caught by the fanotify reader (see catchUp).
type pathWatch struct {
	fd   int
	file *os.File

	mu sync.Mutex // guards the maps below
	// byWD lists, per kernel watch, the entry names that matter; byDir
	// the watch of each directory path last synced.
	byWD  map[int32]map[string]bool
	byDir map[string]int32

	// resolves counts the re-resolutions the watcher caused.
	resolves atomic.Uint64
	// afterRead, when set, sees each buffer read: tests make it panic to
	// show that the watcher comes back.
	afterRead atomic.Pointer[func()]
}

func newPathWatch() (*pathWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify: path watcher: inotify_init1: %w", err)
	}
	// A non-blocking descriptor in an os.File waits in the runtime's
	// poller, and Close wakes the reader.
	return &pathWatch{fd: fd, file: os.NewFile(uintptr(fd), "fanotify-paths"),
		byWD: map[int32]map[string]bool{}, byDir: map[string]int32{}}, nil
}

// watchPoint is a directory entry a mark depends on: name in dir.
type watchPoint struct{ dir, name string }

// watchPoints lists the directory entries a resolved mark depends on:
// every component of its path, each in the directory above it, from the
// root down to the path itself or, for a path that does not exist yet, to
// its first missing component. Any of them deleted, renamed away or
// replaced by a rename changes what the path leads to (/srv renamed moves
// /srv/a/b/file as surely as file renamed). When the existing part of the
// path leads through symbolic links, the components of its real path are
// added too: the target of a link may go as well. Marks share the
// directories above them, so the kernel watches are bounded by the
// distinct directories, not by marks times depth.
func watchPoints(k markKey, r resolved) []watchPoint {
	last := k.path
	if !r.exists {
		last = r.path // an ancestor that is a file: only its own name matters
		if r.isDir {
			last = filepath.Join(r.path, firstMissing(k, r))
		}
	}
	pts := componentsOf(last, nil)
	if r.realAt != "" && r.realAt != r.path {
		pts = componentsOf(r.realAt, pts)
	}
	return pts
}

// componentsOf appends every component of the clean absolute path, each as
// an entry of the directory above it.
func componentsOf(path string, pts []watchPoint) []watchPoint {
	for path != "/" && path != "." && path != "" {
		dir := filepath.Dir(path)
		pts = append(pts, watchPoint{dir: dir, name: filepath.Base(path)})
		path = dir
	}
	return pts
}

// firstMissing is the name of the first component of the mark's path
// below the ancestor it resolved to ("" when it resolved to the path).
func firstMissing(k markKey, r resolved) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(k.path, r.path), "/")
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// nextComponent is the real path of the first missing component of a mark
// covered through its nearest existing ancestor (the directory /srv/a/b
// for a mark of /srv/a/b/c resolved to /srv/a). The ancestor's mark
// reports opens of that component, and the reader resolves the marks again
// before answering one (see catchUp).
func nextComponent(k markKey, r resolved) (string, bool) {
	if r.exists || !r.isDir {
		return "", false
	}
	name := firstMissing(k, r)
	if name == "" {
		return "", false
	}
	at := r.realAt
	if at == "" {
		at = r.path
	}
	return filepath.Join(at, name), true
}

// leadsTo tells whether path is the first missing component of a pending
// mark (as the kernel reports it: with symbolic links resolved).
func (sn *snapshot) leadsTo(path string) bool {
	return sn.pending && sn.next[path]
}

// catchUpWait bounds how long the fanotify reader waits for the marks to be
// resolved again (see catchUp).
const catchUpWait = time.Second

// catchUp resolves the marks again on behalf of the fanotify reader, which
// holds the open of path, the first missing component of a pending mark
// (a directory just made below the mark's ancestor, opened before the
// path watcher has moved the mark down): once it returns, the mark is on
// the deepest existing component, so whatever the opener does next
// through that directory (openat of the file in it) is held. The
// re-resolution runs on its own goroutine and the reader waits for it at
// most catchUpWait: a holder of s.mu that is itself waiting in an open for
// the reader (under s.mu only removeUnreachable opens files, a directory
// to reach an inode its path no longer leads to; a logger might too)
// costs that bound once, never a deadlock.
func (s *Source) catchUp(path string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				s.logf("fanotify: resolving marks again for an open of %s: panic: %v", path, p)
			}
		}()
		s.reresolve()
	}()
	t := time.NewTimer(catchUpWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.logf("fanotify: marks not resolved again within %v of an open of %s; answered without waiting", catchUpWait, path)
	}
}

// sync makes the kernel watches fit want (directory path -> entry names).
// Directories are always added again: the path may lead to another inode
// by now, and inotify_add_watch on the same inode just hands back its wd.
// It returns the directories that could not be watched.
func (w *pathWatch) sync(want map[string]map[string]bool) map[string]error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs map[string]error
	byWD := map[int32]map[string]bool{}
	byDir := map[string]int32{}
	for dir, names := range want {
		wd, err := unix.InotifyAddWatch(w.fd, dir, pathWatchMask)
		if err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[dir] = err
			continue
		}
		set := byWD[int32(wd)]
		if set == nil {
			set = map[string]bool{}
			byWD[int32(wd)] = set
		}
		for n := range names {
			set[n] = true
		}
		byDir[dir] = int32(wd)
	}
	for wd := range w.byWD {
		if _, keep := byWD[wd]; !keep {
			unix.InotifyRmWatch(w.fd, uint32(wd))
		}
	}
	w.byWD, w.byDir = byWD, byDir
	return errs
}

// watching is the number of kernel watches (distinct directories), for
// tests and stats.
func (w *pathWatch) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byWD)
}

// relevant tells whether any record concerns a watched entry.
func (w *pathWatch) relevant(recs []inotify.Record) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range recs {
		if r.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true
		}
		names := w.byWD[r.WD]
		if names == nil {
			continue // a watch sync removed (its IN_IGNORED), or unknown
		}
		if r.Mask&selfGone != 0 || names[r.Name] {
			return true
		}
	}
	return false
}

// run reads the inotify descriptor and resolves the marks again when a
// record concerns them. It returns nil once the descriptor is closed, an
// error (for observer.Keep to run it again) otherwise.
func (w *pathWatch) run(s *Source) error {
	// A restarted reader may have lost records: resolve once anyway.
	s.reresolve()
	buf := make([]byte, 16*1024)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			return fmt.Errorf("fanotify: path watcher: read: %w", err)
		}
		if hook := w.afterRead.Load(); hook != nil {
			(*hook)()
		}
		recs, perr := inotify.ParseRecords(buf[:n])
		if perr != nil {
			s.logf("fanotify: path watcher: %v", perr)
			// The records lost with the bad tail may have mattered.
			s.reresolve()
			continue
		}
		if w.relevant(recs) {
			w.resolves.Add(1)
			s.reresolve()
		}
	}
}

func (w *pathWatch) close() error { return w.file.Close() }
