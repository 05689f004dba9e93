package fanotify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

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
// component appears or goes, without polling:
//   - a mark whose path does not exist yet: its nearest existing ancestor,
//     for the next component of the path (/srv/a for "b" of /srv/a/b/c);
//   - a mark whose path exists: its parent directory, for its own name
//     (deleted, renamed away, replaced by a rename).
//
// Its reader goroutine only turns records into Source.reresolve calls; it
// never touches the fanotify reader, which goes on answering meanwhile.
// A component created and opened at once can still beat the re-mark by
// the few microseconds the reader needs; a directory further up renamed
// away is not seen (only the directory just above a component is watched).
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

// watchPoint is the directory and entry name a resolved mark depends on;
// ok is false when there is none (the root itself).
func watchPoint(k markKey, r resolved) (dir, name string, ok bool) {
	if !r.exists {
		rest := strings.TrimPrefix(strings.TrimPrefix(k.path, r.path), "/")
		name, _, _ = strings.Cut(rest, "/")
		return r.path, name, name != ""
	}
	if k.path == "/" {
		return "", "", false
	}
	return filepath.Dir(k.path), filepath.Base(k.path), true
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

// watching is the number of directories watched, for tests and stats.
func (w *pathWatch) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byDir)
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
