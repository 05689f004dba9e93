package fanotify

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Mask says which accesses a mark holds.
type Mask uint8

const (
	// Open holds open(2) of a file: FAN_OPEN_PERM, event kind "open".
	Open Mask = 1 << iota
	// Access holds read(2): FAN_ACCESS_PERM, event kind "access".
	Access
	// Exec holds opening a file to execute it: FAN_OPEN_EXEC_PERM, event
	// kind "exec".
	Exec
)

// ErrUnavailable is wrapped by New when the kernel or our privileges do not
// allow permission events (ENOSYS, EPERM, EINVAL from fanotify_init/mark),
// and by Mark when a path's file system cannot be marked.
var ErrUnavailable = errors.New("fanotify permission events are unavailable")

// Options configure a Source.
type Options struct {
	// Loop receives the events, through a source named "fanotify".
	Loop *observer.Loop
	Logf func(format string, args ...any)
	// QueueLimit bounds the loop source; default 4096. A held event that
	// does not fit is answered Default at once (counted in Overflows).
	QueueLimit int
	// Deadline bounds every hold. The loop gets it as the Hold's Deadline
	// (when it passes, waiting deciders are overruled with their own
	// HoldDefault); a held event that the loop has still not released a
	// little later (a tenth more, 10ms to 5s) is answered Default by the
	// source itself, even if the loop is stuck (the backstop, counted).
	// Default 30s. Observers' HoldTimeouts longer than this are cut to it.
	Deadline time.Duration
	// Default is the backstop and overflow verdict; the zero value is Allow.
	Default observer.Verdict
	// Inline decides, on the reading goroutine and without the loop, events
	// caused by Vigil's own children that still run Vigil's image (forked,
	// not yet exec'd into their program: the loop may be blocked waiting
	// for that exec). Nil: such events are allowed. It must be fast and
	// safe for concurrent use.
	Inline func(ev *observer.Event) observer.Verdict
	// InlineLater, when set, takes the place of Inline and may keep a
	// slow decision (a digest to compute) off the reading goroutine: it
	// returns decided false and calls answer once it knows, from another
	// goroutine that waits on neither the reader nor the loop. The event
	// is then held like a posted one: answered once, by answer or by the
	// backstop (Options.Default). See inline.go.
	InlineLater func(ev *observer.Event, answer func(observer.Verdict)) (v observer.Verdict, decided bool)
}

// Stats count what the source did.
type Stats struct {
	// Read counts permission events read from the kernel.
	Read uint64
	// Posted went to the loop; Exempt were Vigil's own accesses; Inline
	// went through Options.Inline; Backstop were answered by the deadline.
	Posted, Exempt, Inline, Backstop uint64
	// Overflows counts kernel queue overflows and held events the loop's
	// source had no room for.
	Overflows uint64
	// Allowed and Denied count the answers written to the kernel, including
	// the immediate allows of accesses no mark asked for.
	Allowed, Denied uint64
	// Marks is the number of distinct marks.
	Marks int
}

// Source is an open fanotify group and its reader.
type Source struct {
	opts    Options
	fd      int
	file    *os.File
	src     *observer.Source
	selfPID int
	selfExe fileID
	// ownImages, once AddOwnImage was called, are selfExe and the images
	// added, read by the reader; imageFDs keep the added ones open for
	// marking again after a flush (guarded by mu).
	ownImages atomic.Pointer[[]fileID]
	imageFDs  []int
	done      chan struct{}
	stop      chan struct{}
	// paths follows the directory entries the marks depend on (see
	// pathWatch); nil if inotify is unavailable. Set before any mark.
	paths *pathWatch
	// mounts resolves the marks again when the mount table changes (see
	// mountFollow); nil if /proc/self/mountinfo cannot be opened.
	mounts *mountFollow

	mu       sync.Mutex // guards the marks below
	closed   bool
	marks    map[MarkID]*markEntry
	byKey    map[markKey]*markEntry
	nextMark MarkID
	applied  map[targetKey]*target
	flags    map[targetKey]uint
	snap     atomic.Pointer[snapshot]
	// stale is set when a kernel mark could not be removed (its path leads
	// elsewhere now), so applied no longer lists every kernel mark.
	stale bool
	// marked is len(applied) > 0 || stale, readable without mu: a refresh
	// holds mu while it resolves paths, which may sleep in a file system
	// that stopped answering, and IfUnmarked must not wait for that when
	// the answer is no anyway.
	marked atomic.Bool
	// lastUsed is what each mark resolved to in the last refresh: a
	// change of the mount table resolves the marks again only if one of
	// them now resolves elsewhere (see mountsChanged).
	lastUsed map[MarkID]resolved
	// beforeWatch, when set, runs in each refresh pass between resolving
	// the marks and placing the path watches: tests change paths there.
	beforeWatch func()

	heldMu sync.Mutex
	held   map[*heldEvent]struct{}

	read, posted, exempt, inline, backstop, overflows, allowed, denied atomic.Uint64
}

// New creates the fanotify group (FAN_CLASS_CONTENT, unlimited queue:
// the kernel would otherwise allow permission events it has no room for
// without telling anyone) and starts the reader goroutine.
func New(opts Options) (*Source, error) {
	if opts.Loop == nil {
		return nil, fmt.Errorf("fanotify: no loop")
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = 4096
	}
	if opts.Deadline <= 0 {
		opts.Deadline = 30 * time.Second
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_UNLIMITED_QUEUE,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("fanotify_init: %w (%w)", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	self, ok := statID("/proc/self/exe")
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("fanotify: cannot stat /proc/self/exe")
	}
	s := &Source{
		opts: opts, fd: fd, file: os.NewFile(uintptr(fd), "fanotify"),
		selfPID: os.Getpid(), selfExe: self, done: make(chan struct{}), stop: make(chan struct{}),
		marks: map[MarkID]*markEntry{}, byKey: map[markKey]*markEntry{},
		applied: map[targetKey]*target{}, flags: map[targetKey]uint{},
		held: map[*heldEvent]struct{}{},
	}
	s.snap.Store(&snapshot{})
	if err := s.ignoreOwnExecutable(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.src = opts.Loop.NewSource("fanotify", opts.QueueLimit)
	s.startReaders()
	return s, nil
}

// startReaders runs the fanotify reader and the path watcher under
// observer.Keep, so that a panic or a read error costs a restart, not the
// source (with a dead reader every marked access on the machine would
// wait for the backstop, and unread ones for ever). done is closed once
// both have ended after Close.
func (s *Source) startReaders() {
	paths, err := newPathWatch()
	if err != nil {
		s.logf("%v: marks of missing paths are resolved again only when other marks change", err)
	}
	keep := observer.KeepOptions{Logf: s.opts.Logf}
	reader := s.src.Keep("fanotify reader", keep, s.run)
	var watcher *observer.Keeper
	if paths != nil {
		s.mu.Lock()
		s.paths = paths
		s.mu.Unlock()
		watcher = s.src.Keep("fanotify path watcher", keep, func() error { return paths.run(s) })
	}
	mounts, err := newMountFollow()
	if err != nil {
		s.logf("fanotify: %v: a mount over a marked path is noticed only when something else moves the marks", err)
	}
	var follower *observer.Keeper
	if mounts != nil {
		s.mu.Lock()
		s.mounts = mounts
		s.mu.Unlock()
		follower = s.src.Keep("fanotify mount follower", keep, func() error { return mounts.run(s) })
		mounts.keeper = follower
	}
	go func() {
		<-s.stop
		reader.Stop()
		if watcher != nil {
			watcher.Stop()
			paths.close()
			<-watcher.Done()
		}
		if follower != nil {
			follower.Stop()
			mounts.sig.Stop()
			<-follower.Done()
			mounts.sig.Close()
		}
		<-reader.Done()
		close(s.done)
	}()
}

func (s *Source) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// Close stops reading and answers every held event with Allow (the kernel
// allows whatever is still queued when the group goes). Marks go with the
// group.
func (s *Source) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.marked.Store(false) // a closed group holds nothing (IfUnmarked)
	s.mu.Unlock()
	close(s.stop)
	s.releaseAll()
	err := s.file.Close()
	s.mu.Lock()
	for _, fd := range s.imageFDs {
		unix.Close(fd)
	}
	s.imageFDs = nil
	s.mu.Unlock()
	<-s.done
	// The reader may have held more between the first pass and its end.
	s.releaseAll()
	return err
}

func (s *Source) releaseAll() {
	s.heldMu.Lock()
	all := make([]*heldEvent, 0, len(s.held))
	for h := range s.held {
		all = append(all, h)
	}
	s.heldMu.Unlock()
	for _, h := range all {
		h.release(observer.Allow)
	}
}

// backstopAfter is when the source's own timer answers a held event: a
// little after the Deadline the loop was given, so that a loop that works
// decides at the Deadline itself, with its deciders' defaults (a path
// unit's hold-verdict), and the source's Default only answers for a loop
// that is stuck or very late. The grace is a second at least: on a loaded
// machine a working loop's timer can fire a few hundred milliseconds late,
// and the source must not answer for it then.
func (s *Source) backstopAfter() time.Duration {
	grace := min(max(s.opts.Deadline/10, time.Second), 5*time.Second)
	return s.opts.Deadline + grace
}

// Backstop is the longest a held event waits (Options.Deadline after
// defaults), whatever the deciding observers' HoldTimeouts: the loop is
// given it as the Hold's Deadline and then takes the waiting deciders'
// defaults; the source's own timer answers Options.Default shortly after,
// should the loop not have answered.
func (s *Source) Backstop() time.Duration { return s.opts.Deadline }

// IfUnmarked runs f, with marks kept from changing meanwhile, if the group
// has no marks (the ignore mark of our own executable aside): then nothing
// f does can be held. It reports whether it ran f. A manager that forks with
// vfork (syscall.ForkExec) can start a program directly under it and must
// otherwise go through a child that is not a vfork (see the package doc).
func (s *Source) IfUnmarked(f func()) bool {
	if s.marked.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && (len(s.applied) > 0 || s.stale) {
		return false
	}
	f()
	return true
}

// ignoreOwnExecutable gives our executable's inode an ignore mask of every
// permission event (surviving modification), so that no open, read or exec
// of it ever produces an event of this group, whichever mark (inode,
// directory, mount) would cover it: the kernel merges the ignore masks of
// every mark of a group on an event's objects. A child of ours that execs
// our own image (the units/exec trampoline) is still in vfork, with a Go
// thread of ours stopped in the kernel until the exec is done; answering
// its exec would need our reader goroutine, which a garbage collection
// starting then never lets run (the collector waits for the forking thread
// first). One mark per group is enough: the ignore mask is on the inode,
// so it applies on every mount and file system the inode is reached
// through. It goes only with the group or a flush (see refreshLocked).
func (s *Source) ignoreOwnExecutable() error {
	err := unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORED_MASK|unix.FAN_MARK_IGNORED_SURV_MODIFY,
		allPermissions, unix.AT_FDCWD, "/proc/self/exe")
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) {
		// A file system that cannot be marked: no mark can cover our
		// executable either.
		s.logf("fanotify: our executable's file system cannot be marked (%v): nothing can hold its execs", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("fanotify: ignore mark on our own executable: %w", markError("/proc/self/exe", err))
	}
	return nil
}

// AddOwnImage makes the executable open as f count as an image of our own,
// like our executable: its inode gets the same ignore mark (kept across
// flushes), and a child of ours running it is answered through
// Options.Inline. units/exec's exec stub is such an image: our vfork
// children exec it in place of a program whose exec may be held, and it
// then execs the program while the manager waits for it. The source keeps
// its own descriptor of f until Close.
func (s *Source) AddOwnImage(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fanotify: own image %s: %w", f.Name(), err)
	}
	fd := -1
	if cerr := rc.Control(func(raw uintptr) { fd, err = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fanotify: own image %s: dup: %w", f.Name(), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("fanotify: own image %s: %w", f.Name(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		unix.Close(fd)
		return fmt.Errorf("fanotify: own image %s: source closed", f.Name())
	}
	if err := s.ignoreImage(fd); err != nil {
		unix.Close(fd)
		return fmt.Errorf("fanotify: ignore mark on own image %s: %w", f.Name(), err)
	}
	s.imageFDs = append(s.imageFDs, fd)
	images := append(slices.Clone(s.images()), fileID{uint64(st.Dev), st.Ino})
	s.ownImages.Store(&images)
	return nil
}

// ignoreImage puts the ignore mark of ignoreOwnExecutable on the file open
// as fd.
func (s *Source) ignoreImage(fd int) error {
	return unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORED_MASK|unix.FAN_MARK_IGNORED_SURV_MODIFY,
		allPermissions, fd, "")
}

// images is our executable and the images added by AddOwnImage.
func (s *Source) images() []fileID {
	if all := s.ownImages.Load(); all != nil {
		return *all
	}
	return []fileID{s.selfExe}
}

// allPermissions is every permission event the group can be marked for.
const allPermissions = unix.FAN_OPEN_PERM | unix.FAN_ACCESS_PERM | unix.FAN_OPEN_EXEC_PERM

// Stats reports the counters. Safe from any goroutine.
func (s *Source) Stats() Stats {
	return Stats{
		Read: s.read.Load(), Posted: s.posted.Load(), Exempt: s.exempt.Load(), Inline: s.inline.Load(),
		Backstop: s.backstop.Load(), Overflows: s.overflows.Load(), Allowed: s.allowed.Load(),
		Denied: s.denied.Load(), Marks: s.snap.Load().count,
	}
}

// answer writes a verdict for an event's file and closes it. Counting
// comes first, so that whoever sees the accessor go on sees it counted.
func (s *Source) answer(fd int32, v observer.Verdict) {
	if v == observer.Allow {
		s.allowed.Add(1)
	} else {
		s.denied.Add(1)
	}
	var b [responseLen]byte
	encodeResponse(&b, fd, v == observer.Allow)
	if _, err := s.file.Write(b[:]); err != nil && !errors.Is(err, os.ErrClosed) {
		s.logf("fanotify: answer %s for fd %d: %v", v, fd, err)
	}
	unix.Close(int(fd))
}

// heldEvent is a permission event waiting for the loop. It is answered
// exactly once: by the loop's Release or by the backstop, whichever comes
// first.
type heldEvent struct {
	s     *Source
	fd    int32
	done  atomic.Bool
	timer atomic.Pointer[time.Timer]
}

// claim makes the caller the one who answers; only the first caller gets
// true.
func (h *heldEvent) claim() bool {
	if !h.done.CompareAndSwap(false, true) {
		return false
	}
	if t := h.timer.Load(); t != nil {
		t.Stop()
	}
	h.s.heldMu.Lock()
	delete(h.s.held, h)
	h.s.heldMu.Unlock()
	return true
}

func (h *heldEvent) release(v observer.Verdict) bool {
	if !h.claim() {
		return false
	}
	h.s.answer(h.fd, v)
	return true
}

func (h *heldEvent) expire() {
	if h.claim() {
		h.s.backstop.Add(1)
		h.s.logf("fanotify: held event not released within %v; answered %s", h.s.backstopAfter(), h.s.opts.Default)
		h.s.answer(h.fd, h.s.opts.Default)
	}
}

// run is the reader goroutine: it returns nil once the group is closed;
// after a panic observer.Keep runs it again.
func (s *Source) run() error {
	buf := make([]byte, 64*1024)
	recs := make([]record, 0, 256)
	var proc procReader
	overflowing := false
	// unanswered are the records of the batch not yet handed to handle
	// (which answers its own on a panic). A panic outside handle answers
	// them Default before Keep runs the reader again: nobody else would,
	// and their accessors would sleep for ever.
	var unanswered []record
	defer func() {
		if p := recover(); p != nil {
			for _, r := range unanswered {
				if r.FD != unix.FAN_NOFD && r.FD >= 0 {
					s.answer(r.FD, s.opts.Default)
				}
			}
			panic(p)
		}
	}()
	for {
		n, err := s.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			s.logf("fanotify: read: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		recs, err = parseRecords(buf[:n], recs[:0])
		if err != nil {
			s.logf("%v", err)
		}
		sawOverflow := false
		for i, r := range recs {
			unanswered = recs[i:]
			if r.Mask&unix.FAN_Q_OVERFLOW != 0 {
				s.overflows.Add(1)
				sawOverflow = true
				if !overflowing {
					s.logf("fanotify: kernel event queue overflowed; accesses it had no room for were allowed")
				}
				overflowing = true
			}
			if r.FD == unix.FAN_NOFD || r.FD < 0 {
				continue
			}
			s.handle(&proc, r)
		}
		unanswered = nil
		if !sawOverflow {
			overflowing = false
		}
	}
}

// handle decides or posts one event that carries a file. A panic costs
// this event its default verdict, never the reader (which every marked
// access on the machine waits for).
func (s *Source) handle(proc *procReader, r record) {
	settled := false
	defer func() {
		if p := recover(); p != nil {
			s.logf("fanotify: recovered from panic on an event of pid %d: %v\n%s", r.PID, p, debug.Stack())
			if !settled {
				s.answer(r.FD, s.opts.Default)
			}
		}
	}()
	kind, bit := kindOf(r.Mask)
	if kind == "" {
		// Not a permission event: nothing waits for an answer.
		settled = true
		unix.Close(int(r.FD))
		return
	}
	s.read.Add(1)
	sn := s.snap.Load()
	if int(r.PID) == s.selfPID {
		s.exempt.Add(1)
		settled = true
		s.answer(r.FD, observer.Allow)
		return
	}
	path := proc.fdPath(r.FD)
	mark, ok := sn.match(path, bit)
	if !ok && sn.leadsTo(path) {
		// A component of a pending path, opened before the path watcher
		// moved the mark down: move it now, before the opener goes on.
		s.catchUp(path)
		sn = s.snap.Load()
		mark, ok = sn.match(path, bit)
	}
	if !ok {
		settled = true
		s.answer(r.FD, observer.Allow)
		return
	}
	if proc.runsImage(r.PID, s.selfPID, s.images()) {
		s.inline.Add(1)
		if s.opts.InlineLater != nil {
			settled = true
			s.decideInlineLater(s.event(proc, r, kind, path, mark), r.FD)
			return
		}
		v := observer.Allow
		if s.opts.Inline != nil {
			ev := s.event(proc, r, kind, path, mark)
			v = s.inlineVerdict(&ev)
		}
		settled = true
		s.answer(r.FD, v)
		return
	}
	ev := s.event(proc, r, kind, path, mark)
	h := &heldEvent{s: s, fd: r.FD}
	// From here on the held event answers for itself (backstop included).
	settled = true
	s.heldMu.Lock()
	s.held[h] = struct{}{}
	s.heldMu.Unlock()
	h.timer.Store(time.AfterFunc(s.backstopAfter(), h.expire))
	ev.Hold = &observer.Hold{
		Release:  func(v observer.Verdict) { h.release(v) },
		Deadline: s.opts.Deadline,
		Default:  observer.Allow,
	}
	s.posted.Add(1) // before the loop can release it
	if s.src.Post(ev) {
		return
	}
	// No room at the loop: fail safe with the configured verdict now
	// rather than when the loop gets round to the dropped hold.
	s.posted.Add(^uint64(0))
	s.overflows.Add(1)
	h.release(s.opts.Default)
}

func (s *Source) inlineVerdict(ev *observer.Event) (v observer.Verdict) {
	defer func() {
		if p := recover(); p != nil {
			s.logf("fanotify: inline decider panicked: %v; taking %s", p, s.opts.Default)
			v = s.opts.Default
		}
	}()
	return s.opts.Inline(ev)
}

func (s *Source) event(proc *procReader, r record, kind, path, mark string) observer.Event {
	p := proc.process(r.PID)
	return observer.Event{
		Source: "fanotify",
		Kind:   kind,
		Attrs: map[string]string{
			"path":   path,
			"pid":    strconv.Itoa(int(r.PID)),
			"uid":    p.uid,
			"exe":    p.exe,
			"comm":   p.comm,
			"cgroup": p.cgrp,
			"mark":   mark,
		},
	}
}
