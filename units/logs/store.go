package logs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Line is one line of a unit's log.
type Line struct {
	Time time.Time
	Unit string
	// Stream is "stdout", "stderr", or "vigil" for the manager's own lines.
	Stream string
	// PID is the writing process, 0 for the manager's own lines.
	PID  int
	Text string
}

// Streams of lines.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamVigil  = "vigil"
)

// Options tune a Store. Zero values mean the defaults.
type Options struct {
	// RingLines and RingBytes bound each unit's in-memory ring (lines, and
	// bytes of text); the oldest lines go first. Defaults 1000 and 1 MiB.
	RingLines int
	RingBytes int
	// MaxFileSize is the size at which DIR/UNIT.log is rotated (default
	// 1 MiB); KeepFiles is how many rotated files are kept (UNIT.log.1 is the
	// newest; default 3, negative keeps none).
	MaxFileSize int64
	KeepFiles   int
	// MaxLineLength cuts longer lines (default 4096 bytes).
	MaxLineLength int
	// FollowBuffer is the capacity of a follower's channel (default 256).
	FollowBuffer int
	// Echo, if set, gets every line (e.g. to copy it to the console). Calls
	// are serialized, made outside the store's lock, from capture goroutines
	// and from Append's caller: a slow Echo slows only capture.
	Echo func(Line)
	// Warn, if set, is told once when writing to disk fails and the store
	// continues in memory only.
	Warn func(error)
}

func (o *Options) setDefaults() {
	if o.RingLines <= 0 {
		o.RingLines = 1000
	}
	if o.RingBytes <= 0 {
		o.RingBytes = 1 << 20
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 1 << 20
	}
	if o.KeepFiles == 0 {
		o.KeepFiles = 3
	}
	if o.KeepFiles < 0 {
		o.KeepFiles = 0
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = 4096
	}
	if o.FollowBuffer <= 0 {
		o.FollowBuffer = 256
	}
}

// Stats are counters of a Store.
type Stats struct {
	Units         int
	Lines         uint64 // lines taken in since Open
	FollowerDrops uint64 // lines a slow follower did not get
	DiskEnabled   bool
	DiskErrors    uint64
}

// Store keeps the logs of all units. It is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	// readBuffers lends capture goroutines a buffer only while a read is in
	// progress, so an idle capture holds no buffer.
	readBuffers sync.Pool

	mu        sync.Mutex
	units     map[string]*unitLog
	followers map[*follower]struct{}
	diskOn    bool
	warned    bool
	closed    bool
	stats     Stats
	scratch   []byte // reused buffer of records being written

	echoMu sync.Mutex
}

type entry struct {
	line   Line
	onDisk bool
}

// unitLog is one unit's ring and open file.
type unitLog struct {
	// ring holds the lines ring[head:], oldest first; the dead prefix is
	// reclaimed when it grows large.
	ring      []entry
	head      int
	ringBytes int
	file      *os.File
	size      int64
}

type follower struct {
	unit    string
	ch      chan Line
	dropped int // lines dropped since the last delivered one
}

// Open creates a store keeping files in dir (created if missing). An empty
// dir keeps logs in memory only. A directory that cannot be created or
// written is not an error: the store warns once (Options.Warn) and works
// from memory.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	s := &Store{
		dir:       dir,
		opts:      opts,
		units:     make(map[string]*unitLog),
		followers: make(map[*follower]struct{}),
	}
	s.readBuffers.New = func() any { b := make([]byte, 16<<10); return &b }
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			s.mu.Lock()
			s.failDiskLocked(fmt.Errorf("log directory: %w", err))
			s.mu.Unlock()
		} else {
			s.diskOn = true
		}
	}
	return s, nil
}

// ResumeDisk turns disk writing back on after a failure, e.g. once /var is
// mounted read-write. Lines kept only in memory meanwhile stay there.
func (s *Store) ResumeDisk() error {
	if s.dir == "" {
		return errors.New("store has no log directory")
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	probe := filepath.Join(s.dir, ".vigil-write-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	os.Remove(probe)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.diskOn = true
		s.warned = false
	}
	return nil
}

// Close flushes and closes the files and ends every follower. Captures
// still running keep their lines in memory until their pipes close.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.diskOn = false
	var errs []error
	for _, u := range s.units {
		if u.file != nil {
			errs = append(errs, u.file.Close())
			u.file = nil
		}
	}
	for f := range s.followers {
		close(f.ch)
		delete(s.followers, f)
	}
	return errors.Join(errs...)
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Units = len(s.units)
	st.DiskEnabled = s.diskOn
	return st
}

// Capture reads lines from r until EOF in a goroutine of its own and adds
// them to unit's log as written by pid on stream. It closes r at the end;
// the returned channel is closed then, once every line is stored.
func (s *Store) Capture(unit string, pid int, stream string, r *os.File) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		s.capture(unit, pid, stream, r)
	}()
	return done
}

func (s *Store) capture(unit string, pid int, stream string, r *os.File) {
	split := lineSplitter{max: s.opts.MaxLineLength}
	var batch []Line
	emitTo := func(now time.Time) func([]byte) {
		return func(text []byte) {
			batch = append(batch, Line{Time: now, Unit: unit, Stream: stream, PID: pid, Text: string(text)})
		}
	}
	rc, err := r.SyscallConn()
	if err != nil {
		s.Append(unit, StreamVigil, fmt.Sprintf("cannot capture %s of process %d: %v", stream, pid, err))
		return
	}
	for {
		var buf *[]byte
		var n int
		var readErr error
		err := rc.Read(func(fd uintptr) bool {
			buf = s.readBuffers.Get().(*[]byte)
			for {
				n, readErr = unix.Read(int(fd), *buf)
				if readErr != unix.EINTR {
					break
				}
			}
			if readErr == unix.EAGAIN {
				s.readBuffers.Put(buf)
				buf = nil
				return false // wait until readable, without a buffer
			}
			return true
		})
		if n > 0 {
			// One timestamp per read: the lines of one read arrived together.
			split.feed((*buf)[:n], emitTo(time.Now()))
		}
		if buf != nil {
			s.readBuffers.Put(buf)
		}
		if n <= 0 || readErr != nil || err != nil {
			break
		}
		s.add(unit, batch)
		batch = batch[:0]
	}
	split.flush(emitTo(time.Now()))
	s.add(unit, batch)
}

// Append adds the manager's own text about unit (stream "vigil" unless
// given), one line per line of text.
func (s *Store) Append(unit, stream, text string) {
	if stream == "" {
		stream = StreamVigil
	}
	now := time.Now()
	split := lineSplitter{max: s.opts.MaxLineLength}
	var batch []Line
	emit := func(b []byte) {
		batch = append(batch, Line{Time: now, Unit: unit, Stream: stream, Text: string(b)})
	}
	split.feed([]byte(text), emit)
	split.flush(emit)
	if len(batch) == 0 {
		emit(nil) // an empty message is still a line
	}
	s.add(unit, batch)
}

// add stores a batch of one unit's lines: disk first (so each line knows
// whether it made it there), then the ring, then followers; the echo hook
// runs after the lock is released.
func (s *Store) add(unit string, lines []Line) {
	if len(lines) == 0 {
		return
	}
	s.mu.Lock()
	u := s.units[unit]
	if u == nil {
		u = &unitLog{}
		s.units[unit] = u
	}
	written := s.writeLocked(unit, u, lines)
	for i, l := range lines {
		s.pushLocked(u, entry{line: l, onDisk: i < written})
		s.notifyLocked(l)
	}
	s.stats.Lines += uint64(len(lines))
	s.mu.Unlock()

	if s.opts.Echo != nil {
		s.echoMu.Lock()
		for _, l := range lines {
			s.opts.Echo(l)
		}
		s.echoMu.Unlock()
	}
}

func (s *Store) pushLocked(u *unitLog, e entry) {
	u.ring = append(u.ring, e)
	u.ringBytes += len(e.line.Text)
	for len(u.ring)-u.head > 1 && (len(u.ring)-u.head > s.opts.RingLines || u.ringBytes > s.opts.RingBytes) {
		u.ringBytes -= len(u.ring[u.head].line.Text)
		u.ring[u.head] = entry{}
		u.head++
	}
	if u.head > 64 && u.head > len(u.ring)/2 {
		n := copy(u.ring, u.ring[u.head:])
		clear(u.ring[n:])
		u.ring = u.ring[:n]
		u.head = 0
	}
}

func (s *Store) notifyLocked(l Line) {
	for f := range s.followers {
		if f.unit != "" && f.unit != l.Unit {
			continue
		}
		if f.dropped > 0 {
			if cap(f.ch)-len(f.ch) < 2 {
				f.dropped++
				s.stats.FollowerDrops++
				continue
			}
			f.ch <- Line{Time: l.Time, Unit: l.Unit, Stream: StreamVigil,
				Text: fmt.Sprintf("(%d lines dropped: reader too slow)", f.dropped)}
			f.dropped = 0
		}
		select {
		case f.ch <- l:
		default:
			f.dropped++
			s.stats.FollowerDrops++
		}
	}
}

// Follow returns a channel that gets every new line of unit ("" for all
// units) until cancel is called or the store is closed. A reader that falls
// FollowBuffer lines behind loses lines; it then gets a "lines dropped"
// marker (stream "vigil") before the next line it does get.
func (s *Store) Follow(unit string) (<-chan Line, func()) {
	f := &follower{unit: unit, ch: make(chan Line, s.opts.FollowBuffer)}
	s.mu.Lock()
	if s.closed {
		close(f.ch)
	} else {
		s.followers[f] = struct{}{}
	}
	s.mu.Unlock()
	cancel := sync.OnceFunc(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.followers[f]; ok {
			delete(s.followers, f)
			close(f.ch)
		}
	})
	return f.ch, cancel
}

// Tail returns up to n of unit's latest lines (n <= 0: all) not older than
// since (zero: no limit), oldest first; unit "" merges all units by time.
// It reads the ring and, when that holds fewer lines than asked, the files
// on disk, rotated ones included.
func (s *Store) Tail(unit string, n int, since time.Time) []Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	if unit != "" {
		return s.tailUnitLocked(unit, n, since)
	}
	names := make(map[string]bool, len(s.units))
	for name := range s.units {
		names[name] = true
	}
	for _, name := range s.diskUnits() {
		names[name] = true
	}
	var all []Line
	for name := range names {
		all = append(all, s.tailUnitLocked(name, n, since)...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return lastN(all, n)
}

func (s *Store) tailUnitLocked(unit string, n int, since time.Time) []Line {
	var ring []Line
	onDisk := 0
	if u := s.units[unit]; u != nil {
		for _, e := range u.ring[u.head:] {
			if e.onDisk {
				onDisk++
			}
			if !e.line.Time.Before(since) {
				ring = append(ring, e.line)
			}
		}
	}
	if (n > 0 && len(ring) >= n) || s.dir == "" {
		return lastN(ring, n)
	}
	disk := s.readDisk(unit)
	// The ring is the newest part of the log, and the disk holds the lines
	// written there: the last onDisk lines on disk are the ring's.
	older := disk[:max(len(disk)-onDisk, 0)]
	var out []Line
	for _, l := range older {
		if !l.Time.Before(since) {
			out = append(out, l)
		}
	}
	return lastN(append(out, ring...), n)
}

func lastN(lines []Line, n int) []Line {
	if n > 0 && len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// fileName maps a unit name to its log file's base name. Unit names never
// hold a slash, but the store must not write outside dir whatever it is
// given.
func fileName(unit string) string {
	r := strings.NewReplacer("%", "%25", "/", "%2F")
	name := r.Replace(unit)
	switch {
	case name == "":
		name = "%" // escaping never yields a lone %
	case name[0] == '.':
		name = "%2E" + name[1:]
	}
	return name + ".log"
}

func unitOfFile(base string) (string, bool) {
	name, ok := strings.CutSuffix(base, ".log")
	if !ok {
		return "", false
	}
	if name == "%" {
		return "", true
	}
	if rest, ok := strings.CutPrefix(name, "%2E"); ok {
		name = "." + rest
	}
	r := strings.NewReplacer("%2F", "/", "%25", "%")
	return r.Replace(name), true
}
