package fanotify

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MarkID names one Mark or MarkTree registration.
type MarkID uint64

// markKey is what marks are reference-counted by.
type markKey struct {
	path string
	mask Mask
	tree bool
}

type markEntry struct {
	id   MarkID
	key  markKey
	refs int
}

// targetKey is one kernel mark: an inode (dev, ino) or a mount (mount id).
type targetKey struct {
	mount    bool
	dev, ino uint64
}

// target is what we asked the kernel to mark, and through which path.
type target struct {
	path string
	mask uint64
	// handle reaches the inode again once path leads elsewhere (see
	// removeUnreachable); nil for mounts and file systems without handles.
	handle *unix.FileHandle
}

// markView is one mark as the reader matches events against it.
type markView struct {
	path string // as given to Mark, reported in the "mark" attribute
	real string // with symbolic links resolved, as events report paths
	mask Mask
}

// snapshot is the immutable view of the marks the reader uses: replaced
// as a whole on every change, read without locks.
type snapshot struct {
	// exact holds file marks and marks whose path does not exist yet (both
	// match only their own path) and directory marks (matching the
	// directory itself), by path.
	exact map[string][]markView
	// dirs holds directory marks, matching the files directly in them.
	dirs map[string][]markView
	// trees holds MarkTree marks, matching by path prefix.
	trees []markView
	// pending is set when some mark is covered through an ancestor, until
	// the path watcher sees its path appear.
	pending bool
	// next holds the real paths of the first missing components of the
	// pending marks (see nextComponent).
	next  map[string]bool
	count int
}

// match finds the mark covering path for the access bit, preferring the most
// specific one. It returns the mark's own path.
func (sn *snapshot) match(path string, bit Mask) (string, bool) {
	for _, m := range sn.exact[path] {
		if m.mask&bit != 0 {
			return m.path, true
		}
	}
	if len(sn.dirs) > 0 {
		for _, m := range sn.dirs[filepath.Dir(path)] {
			if m.mask&bit != 0 {
				return m.path, true
			}
		}
	}
	for _, m := range sn.trees {
		if m.mask&bit != 0 && underTree(path, m.real) {
			return m.path, true
		}
	}
	return "", false
}

func underTree(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || (strings.HasPrefix(path, dir) && len(path) > len(dir) && path[len(dir)] == '/')
}

// cleanPath checks and cleans a path given to Mark.
func cleanPath(path string) (string, error) {
	if path == "" || !filepath.IsAbs(path) {
		return "", fmt.Errorf("fanotify mark %q: needs an absolute path", path)
	}
	return filepath.Clean(path), nil
}

// Mark asks for permission events on path for the accesses in mask. See the
// package documentation for how directories and paths that do not exist
// yet are covered.
func (s *Source) Mark(path string, mask Mask) (MarkID, error) {
	return s.mark(path, mask, false)
}

// MarkTree covers a whole subtree: it marks the mount dir is on and filters
// events by path prefix in the reader. Every access of that kind on the
// mount then passes through the reader (answered at once when outside the
// tree); submounts under dir are not covered.
func (s *Source) MarkTree(dir string, mask Mask) (MarkID, error) {
	return s.mark(dir, mask, true)
}

func (s *Source) mark(path string, mask Mask, tree bool) (MarkID, error) {
	path, err := cleanPath(path)
	if err != nil {
		return 0, err
	}
	if mask&(Open|Access|Exec) == 0 {
		return 0, fmt.Errorf("fanotify mark %s: no access to hold", path)
	}
	mask &= Open | Access | Exec
	key := markKey{path: path, mask: mask, tree: tree}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("fanotify mark %s: source closed", path)
	}
	if e, ok := s.byKey[key]; ok {
		e.refs++
		return e.id, nil
	}
	s.nextMark++
	e := &markEntry{id: s.nextMark, key: key, refs: 1}
	s.marks[e.id] = e
	s.byKey[key] = e
	errs := s.refreshLocked()
	if err := errs[e.id]; err != nil {
		delete(s.marks, e.id)
		delete(s.byKey, key)
		s.refreshLocked()
		return 0, err
	}
	return e.id, nil
}

// Unmark drops one reference of a mark; the kernel mark goes with the last
// one. Unknown IDs are ignored.
func (s *Source) Unmark(id MarkID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.marks[id]
	if !ok {
		return
	}
	if e.refs--; e.refs > 0 {
		return
	}
	delete(s.marks, id)
	delete(s.byKey, e.key)
	if !s.closed {
		s.refreshLocked()
	}
}

// resolved is where one mark lands in the kernel.
type resolved struct {
	key    targetKey
	path   string
	mask   uint64
	flags  uint
	exists bool
	isDir  bool
	real   string
	realAt string // path with symbolic links resolved
}

// resolve finds the kernel target of a mark: the file or directory itself,
// its mount for a tree, or its nearest existing ancestor.
func resolve(k markKey) (resolved, error) {
	perm := k.mask.kernelMask()
	p, st, err := nearestExisting(k.path)
	if err != nil {
		return resolved{}, err
	}
	var fs unix.Statfs_t
	if unix.Statfs(p, &fs) == nil && fs.Type == unix.PROC_SUPER_MAGIC {
		return resolved{}, fmt.Errorf("fanotify mark %s: %s is on procfs, which the source reads itself: %w", k.path, p, ErrUnavailable)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	r := resolved{path: p, exists: p == k.path, isDir: isDir, real: k.path, realAt: p}
	// Events carry the file's real path: match against that.
	if real, err := filepath.EvalSymlinks(p); err == nil {
		r.real = filepath.Join(real, strings.TrimPrefix(k.path, p))
		r.realAt = real
	}
	switch {
	case k.tree && r.exists:
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_MNT_ID, &sx); err != nil {
			return resolved{}, fmt.Errorf("fanotify mark %s: mount id: %w", k.path, err)
		}
		r.key = targetKey{mount: true, ino: sx.Mnt_id}
		r.mask = perm | unix.FAN_ONDIR
		r.flags = unix.FAN_MARK_MOUNT
		return r, nil
	case r.exists && !isDir:
		r.mask = perm
	case r.exists:
		r.mask = perm | unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD
	default:
		// An ancestor stands in: its children's opens show the
		// path's components appearing, and the path itself once
		// it exists and is opened.
		r.mask = perm | unix.FAN_OPEN_PERM | unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD
	}
	r.key = targetKey{dev: uint64(st.Dev), ino: st.Ino}
	return r, nil
}

// nearestExisting stats path or, while it does not exist, the directories
// above it: it returns the first that exists, and its stat.
func nearestExisting(path string) (string, unix.Stat_t, error) {
	p := path
	for {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			return p, st, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return "", st, fmt.Errorf("fanotify mark %s: %w", path, err)
		}
		if p == "/" {
			return "", st, fmt.Errorf("fanotify mark %s: no existing ancestor", path)
		}
		p = filepath.Dir(p)
	}
}

// maxRefreshPasses bounds refreshLocked's passes while paths keep changing
// under it; the path watcher's next record brings another round anyway.
const maxRefreshPasses = 16

// refreshLocked resolves every mark again, brings the kernel's marks in line
// (adding first, so no covered access slips through between) and publishes
// a new snapshot. It returns the errors per mark.
//
// A component can appear between a mark's resolution and the inotify watch
// that should report it (mkdir -p of a/b/c: "b" is made before the watch on
// "a" exists), and no record would ever come. So once the watches are in
// place every mark is resolved again, and the pass repeats if one moved.
func (s *Source) refreshLocked() map[MarkID]error {
	var errs map[MarkID]error
	var used map[MarkID]resolved
	for range maxRefreshPasses {
		errs, used = s.refreshPassLocked()
		if !s.movedSince(used) {
			break
		}
	}
	s.lastUsed = used
	return errs
}

// movedSince tells whether some mark would now resolve to another target
// than it did in used.
func (s *Source) movedSince(used map[MarkID]resolved) bool {
	for id, e := range s.marks {
		was, had := used[id]
		now, err := resolve(e.key)
		if had != (err == nil) {
			return true
		}
		if had && (now.key != was.key || now.path != was.path || now.exists != was.exists || now.realAt != was.realAt) {
			return true
		}
	}
	return false
}

// refreshPassLocked is one pass of refreshLocked; it also returns what each
// mark resolved to.
func (s *Source) refreshPassLocked() (map[MarkID]error, map[MarkID]resolved) {
	errs := map[MarkID]error{}
	used := map[MarkID]resolved{}
	want := map[targetKey]*target{}
	owners := map[targetKey][]MarkID{}
	sn := &snapshot{exact: map[string][]markView{}, dirs: map[string][]markView{}, next: map[string]bool{}}
	// watch lists the directory entries the marks depend on, for the
	// path watcher (see pathWatch).
	watch := map[string]map[string]bool{}
	for id, e := range s.marks {
		r, err := resolve(e.key)
		if err != nil {
			errs[id] = err
			continue
		}
		used[id] = r
		for _, wp := range watchPoints(e.key, r) {
			if watch[wp.dir] == nil {
				watch[wp.dir] = map[string]bool{}
			}
			watch[wp.dir][wp.name] = true
		}
		t := want[r.key]
		if t == nil {
			t = &target{path: r.path}
			want[r.key] = t
			s.flags[r.key] = r.flags
		}
		t.mask |= r.mask
		owners[r.key] = append(owners[r.key], id)
		v := markView{path: e.key.path, real: r.real, mask: e.key.mask}
		switch {
		case e.key.tree && r.exists:
			sn.trees = append(sn.trees, v)
		case r.exists && r.isDir:
			sn.exact[v.real] = append(sn.exact[v.real], v)
			sn.dirs[v.real] = append(sn.dirs[v.real], v)
		default:
			sn.exact[v.real] = append(sn.exact[v.real], v)
			if !r.exists {
				sn.pending = true
			}
			if next, ok := nextComponent(e.key, r); ok {
				sn.next[next] = true
			}
		}
		sn.count++
	}
	for key, t := range want {
		have := s.applied[key]
		if have != nil {
			t.handle = have.handle
		}
		add := t.mask
		if have != nil {
			add &^= have.mask
		}
		if add == 0 {
			continue
		}
		if err := unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|s.flags[key], add, unix.AT_FDCWD, t.path); err != nil {
			err = markError(t.path, err)
			for _, id := range owners[key] {
				errs[id] = err
			}
			// Keep what was applied before; the failing bits are not.
			t.mask &^= add
			if t.mask == 0 && have == nil {
				delete(want, key)
			}
			continue
		}
		if t.handle == nil && !key.mount {
			t.handle = handleOf(t.path)
		}
	}
	for key, have := range s.applied {
		rm := have.mask
		if t := want[key]; t != nil {
			rm &^= t.mask
		}
		if rm != 0 && s.stillAt(key, have.path) {
			unix.FanotifyMark(s.fd, unix.FAN_MARK_REMOVE|s.flags[key], rm, unix.AT_FDCWD, have.path)
		} else if rm != 0 && !s.removeUnreachable(key, have, rm) {
			// The path leads elsewhere now (a mount over it, a renamed or
			// removed file) and the inode cannot be reached: it keeps its
			// mark, and the reader lets its events through since no
			// mark's path matches them.
			s.stale = true
		}
		if want[key] == nil {
			delete(s.flags, key)
		}
	}
	if len(want) == 0 && (len(s.applied) > 0 || s.stale) {
		s.flushLocked()
	}
	s.applied = want
	s.marked.Store(len(want) > 0 || s.stale)
	s.snap.Store(sn)
	if s.beforeWatch != nil {
		s.beforeWatch()
	}
	if s.paths != nil {
		for dir, err := range s.paths.sync(watch) {
			// Without the watch, a component appearing there is only
			// noticed at the next resolution for another reason.
			s.logf("fanotify: cannot follow %s for marks below it: %v", dir, err)
		}
	}
	return errs, used
}

// stillAt tells whether path still leads to the kernel target key.
func (s *Source) stillAt(key targetKey, path string) bool {
	if key.mount {
		var sx unix.Statx_t
		return unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &sx) == nil && sx.Mnt_id == key.ino
	}
	id, ok := statID(path)
	return ok && id == fileID{key.dev, key.ino}
}

// markError says why the kernel refused a mark; refusals that mean "no
// permission events here" wrap ErrUnavailable so callers can fall back.
func markError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL),
		errors.Is(err, unix.ENODEV), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("fanotify mark %s: %w (%w)", path, ErrUnavailable, err)
	}
	return fmt.Errorf("fanotify mark %s: %w", path, err)
}

// reresolve runs when the path watcher saw a component of a marked path
// appear or go: the marks may land elsewhere now.
func (s *Source) reresolve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for id, err := range s.refreshLocked() {
		s.logf("fanotify: mark %d: %v", id, err)
	}
}

// flushLocked removes every inode and mount mark of the group, including
// those left on inodes their path no longer leads to, and puts the ignore
// mark of our own executable back. It runs when no mark is wanted any more,
// so that IfUnmarked can tell the group generates no events at all. Between
// the flush and the new ignore mark there is no mark, so nothing can be
// held then either.
func (s *Source) flushLocked() {
	unix.FanotifyMark(s.fd, unix.FAN_MARK_FLUSH, 0, unix.AT_FDCWD, "/")
	unix.FanotifyMark(s.fd, unix.FAN_MARK_FLUSH|unix.FAN_MARK_MOUNT, 0, unix.AT_FDCWD, "/")
	s.stale = false
	if err := s.ignoreOwnExecutable(); err != nil {
		s.logf("%v", err)
	}
	for _, fd := range s.imageFDs {
		if err := s.ignoreImage(fd); err != nil {
			s.logf("fanotify: ignore mark on an own image again: %v", err)
		}
	}
}
