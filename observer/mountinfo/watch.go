package mountinfo

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// SourceName is the default name of the Watcher's source.
const SourceName = "mountinfo"

// DefaultPath is the mount table of the calling process.
const DefaultPath = "/proc/self/mountinfo"

// queueLimit bounds the events waiting for the loop. A mount storm beyond
// it is not lost: the Watcher posts a resync with the whole table instead.
const queueLimit = 4096

// resyncRetry is how soon a Watcher retries a resync the loop had no room
// for.
const resyncRetry = 100 * time.Millisecond

// Options configure a Watcher.
type Options struct {
	// Path is the mountinfo file; default DefaultPath.
	Path string
	// SourceName names the source; default SourceName.
	SourceName string
	// NoInitial skips the "mount" events for the mounts present when the
	// Watcher starts (each carries the attribute initial=1).
	NoInitial bool
	// Under limits the events to mounts at or below this path (a test's
	// directory, a container's root); empty is everything.
	Under string
	// Logf receives parse and read errors; nil drops them.
	Logf func(format string, args ...any)
}

// Stats count what a Watcher did.
type Stats struct {
	Reads   uint64 // times the table was read
	Changes uint64 // changes posted
	Lost    uint64 // changes that did not fit the queue (a resync followed)
	Errors  uint64 // reads or parses that failed
}

// Watcher follows a mount table and posts its changes to a loop.
type Watcher struct {
	source *observer.Source
	opts   Options
	fd     int
	stop   [2]int
	done   chan struct{}
	once   sync.Once
	// reader runs run, again after a panic or a poll error (observer.Keep).
	reader *observer.Keeper

	mu    sync.Mutex
	stats Stats
	// table is the last table read; owned by the run goroutine.
	table []Mount
	// now is the loop's clock. Every event is stamped (Event.Mono) with
	// the time its table was read, not when the loop got it, so a guest
	// can tell a change read before something it did from one after.
	now func() time.Duration
}

// Watch opens the mount table, posts its present mounts (unless
// NoInitial) and starts following it.
func Watch(loop *observer.Loop, opts Options) (*Watcher, error) {
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.SourceName == "" {
		opts.SourceName = SourceName
	}
	fd, err := unix.Open(opts.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: open %s: %w", opts.Path, err)
	}
	w := &Watcher{source: loop.NewSource(opts.SourceName, queueLimit), opts: opts, fd: fd, done: make(chan struct{}), now: loop.Now}
	if err := unix.Pipe2(w.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mountinfo: pipe: %w", err)
	}
	if opts.Under != "" {
		opts.Under = path.Clean(opts.Under)
		w.opts.Under = opts.Under
	}
	readAt := w.now()
	table, err := w.read()
	if err != nil {
		w.closeFDs()
		return nil, err
	}
	w.table = table
	if !opts.NoInitial {
		for _, m := range table {
			ev := event(KindMount, m)
			ev.Mono = readAt
			ev.Attrs["initial"] = "1"
			if !w.source.Post(ev) {
				w.lose()
			}
		}
	}
	w.reader = w.source.Keep("mountinfo watcher", observer.KeepOptions{Logf: w.opts.Logf}, w.run)
	go func() { <-w.reader.Done(); close(w.done) }()
	return w, nil
}

// Table returns a copy of the last table read.
func (w *Watcher) Table() []Mount {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Mount(nil), w.table...)
}

// Stats reports the Watcher's counts.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// event builds the observer event for one change.
func event(kind string, m Mount) observer.Event {
	return observer.Event{Kind: kind, Payload: m, Attrs: map[string]string{
		"where":   m.MountPoint,
		"what":    m.Source,
		"fstype":  m.FSType,
		"options": m.AllOptions(),
		"id":      strconv.Itoa(m.ID),
		"parent":  strconv.Itoa(m.ParentID),
	}}
}

// read re-reads the whole table from the open descriptor: a read from
// offset 0 is also what re-arms the kernel's change signal.
func (w *Watcher) read() ([]Mount, error) {
	var buf bytes.Buffer
	chunk := make([]byte, 32*1024)
	for off := int64(0); ; {
		n, err := unix.Pread(w.fd, chunk, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.count(func(s *Stats) { s.Errors++ })
			return nil, fmt.Errorf("mountinfo: read %s: %w", w.opts.Path, err)
		}
		if n == 0 {
			break
		}
		buf.Write(chunk[:n])
		off += int64(n)
	}
	mounts, err := Parse(&buf)
	if w.opts.Under != "" {
		mounts = slices.DeleteFunc(mounts, func(m Mount) bool { return !IsUnder(m.MountPoint, w.opts.Under) })
	}
	w.count(func(s *Stats) { s.Reads++ })
	if err != nil {
		w.count(func(s *Stats) { s.Errors++ })
		return mounts, fmt.Errorf("mountinfo: %s: %w", w.opts.Path, err)
	}
	return mounts, nil
}

func (w *Watcher) count(fn func(*Stats)) {
	w.mu.Lock()
	fn(&w.stats)
	w.mu.Unlock()
}

func (w *Watcher) lose() {
	w.count(func(s *Stats) { s.Lost++ })
}

func (w *Watcher) logf(format string, args ...any) {
	if w.opts.Logf != nil {
		w.opts.Logf(format, args...)
	}
}

// run follows the table until Close (nil) or a failure; observer.Keep
// then runs it again, and the first read of the new run diffs against the
// last table the failed one kept, so no change is lost.
func (w *Watcher) run() error {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLPRI | unix.POLLERR}, {Fd: int32(w.stop[0]), Events: unix.POLLIN}}
	needResync := w.Stats().Lost > 0
	// Read once at once: a failed run may have taken the kernel's change
	// notice without getting to the table.
	readNow := true
	for {
		timeout := -1
		if needResync {
			timeout = int(resyncRetry / time.Millisecond)
		}
		if readNow {
			timeout = 0
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		n, err := unix.Poll(fds, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mountinfo: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if n == 0 && !needResync && !readNow {
			continue
		}
		readNow = false
		readAt := w.now()
		table, err := w.read()
		if err != nil {
			// A half-read table would look like mass unmounts: keep the
			// old one and wait for the next change.
			w.logf("%v", err)
			continue
		}
		w.mu.Lock()
		old := w.table
		w.table = table
		w.mu.Unlock()
		if needResync {
			if w.source.Post(observer.Event{Kind: KindResync, Mono: readAt, Payload: append([]Mount(nil), table...), Attrs: map[string]string{"mounts": strconv.Itoa(len(table))}}) {
				needResync = false
			}
			continue
		}
		for _, c := range Diff(old, table) {
			ev := event(c.Kind, c.Mount)
			ev.Mono = readAt
			if !w.source.Post(ev) {
				w.lose()
				needResync = true
				break
			}
			w.count(func(s *Stats) { s.Changes++ })
		}
	}
}

// IsUnder reports whether p is dir or below it.
func IsUnder(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// Close stops the Watcher and closes the table.
func (w *Watcher) Close() {
	w.once.Do(func() {
		w.reader.Stop()
		unix.Write(w.stop[1], []byte{1})
		<-w.done
		w.closeFDs()
	})
}

func (w *Watcher) closeFDs() {
	unix.Close(w.fd)
	unix.Close(w.stop[0])
	unix.Close(w.stop[1])
}
