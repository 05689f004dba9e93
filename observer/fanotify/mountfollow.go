package fanotify

import (
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/mountinfo"
)

// mountFollow resolves the marks again when the mount table changes. A
// file system mounted over a directory of a mark's path (or bind-mounted
// over the marked file itself), or unmounted from there, makes the path
// lead to another inode without any inotify record: the path watcher's
// watches are on the directories the mount now hides. The kernel says
// that the table changed, not what changed, with POLLPRI on
// /proc/self/mountinfo (mountinfo.ChangeSignal); each signal costs a stat
// of every mark's path (landsElsewhere), and the marks are resolved again
// (kernel marks and watches brought in line) only if one of them now
// leads elsewhere. Changes that come during a pass are one signal for the
// next pass, so a burst of mounts costs at most two passes.
//
// The table followed is that of the mount namespace the source was made in
// (PID 1's): mounts made in other namespaces do not move the marks.
type mountFollow struct {
	sig *mountinfo.ChangeSignal
	// signals counts the changes of the table seen; moves those that
	// moved a mark (the marks were then resolved again).
	signals, moves atomic.Uint64
	// keeper runs run (set once, before New returns).
	keeper *observer.Keeper
}

func newMountFollow() (*mountFollow, error) {
	sig, err := mountinfo.OpenChangeSignal(mountinfo.DefaultPath)
	if err != nil {
		return nil, err
	}
	return &mountFollow{sig: sig}, nil
}

// run waits for changes of the mount table until stop; it returns nil
// then, an error (for observer.Keep to run it again) otherwise.
func (m *mountFollow) run(s *Source) error {
	// A restarted follower may have missed a change.
	if s.mountsChanged() {
		m.moves.Add(1)
	}
	for {
		changed, err := m.sig.Wait()
		if err != nil {
			return err
		}
		if !changed {
			return nil
		}
		m.signals.Add(1)
		if s.mountsChanged() {
			m.moves.Add(1)
		}
	}
}

// mountsChanged runs after a change of the mount table: when some mark now
// resolves elsewhere, every mark is resolved again and the kernel marks
// moved. Without marks it costs nothing. It reports whether the marks were
// resolved again.
func (s *Source) mountsChanged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.marks) == 0 || !s.landsElsewhere() {
		return false
	}
	for id, err := range s.refreshLocked() {
		s.logf("fanotify: mark %d: %v", id, err)
	}
	return true
}

// landsElsewhere tells whether some mark's kernel mark would now go to
// another inode or mount, or through another path, than in the last
// refresh. It is resolve without what only serves to match events (real
// paths, which a mount cannot change without changing the inode the path
// leads to): a stat of each mark's path, or of its ancestors while they
// are missing.
func (s *Source) landsElsewhere() bool {
	for id, e := range s.marks {
		was, had := s.lastUsed[id]
		key, path, err := landing(e.key)
		if had != (err == nil) {
			return true
		}
		if had && (key != was.key || path != was.path) {
			return true
		}
	}
	return false
}

// landing is where the kernel mark of k goes (see resolve): the key and
// the path it is placed through.
func landing(k markKey) (targetKey, string, error) {
	p, st, err := nearestExisting(k.path)
	if err != nil {
		return targetKey{}, "", err
	}
	if k.tree && p == k.path {
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_MNT_ID, &sx); err != nil {
			return targetKey{}, "", err
		}
		return targetKey{mount: true, ino: sx.Mnt_id}, p, nil
	}
	return targetKey{dev: uint64(st.Dev), ino: st.Ino}, p, nil
}

// handleOf is a file handle of the inode path leads to (symbolic links
// followed, as fanotify_mark does), kept with a kernel mark so that the
// mark can be removed once no path leads to the inode any more (see
// removeUnreachable). Nil when the file system has no handles.
func handleOf(path string) *unix.FileHandle {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return nil
	}
	return &h
}

// removeUnreachable takes the bits rm off the kernel mark of an inode that
// its path no longer leads to: a file or directory now hidden by a mount,
// renamed away or removed while still referenced. Left in place, that
// mark would cost every access of the old inode a round trip through the
// reader (answered at once, since no mark's path matches) until the
// group's marks are flushed. fanotify_mark takes only a path, so the inode
// is opened (O_PATH) from its file handle and marked through
// /proc/self/fd. It reports whether the mark was removed; false for mount
// marks, inodes without a handle, and file systems no path of ours reaches
// any more (completely hidden, or unmounted: the marks went with them).
func (s *Source) removeUnreachable(key targetKey, t *target, rm uint64) bool {
	if key.mount {
		return s.removeMountMark(key, t.path, rm)
	}
	if t.handle == nil {
		return false
	}
	fd, ok := openByHandle(key, t.path, t.handle)
	if !ok {
		return false
	}
	defer unix.Close(fd)
	return unix.FanotifyMark(s.fd, unix.FAN_MARK_REMOVE|s.flags[key], rm, unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd)) == nil
}

// removeMountMark takes the bits rm off the mark of the mount key (a
// MarkTree whose directory is now under another mount) through a
// directory above its old path that is still on that mount.
func (s *Source) removeMountMark(key targetKey, path string, rm uint64) bool {
	for dir := parentDir(path); dir != ""; dir = parentDir(dir) {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var sx unix.Statx_t
		on := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &sx) == nil && sx.Mnt_id == key.ino
		removed := on && unix.FanotifyMark(s.fd, unix.FAN_MARK_REMOVE|unix.FAN_MARK_MOUNT, rm, unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd)) == nil
		unix.Close(fd)
		if on {
			return removed
		}
	}
	return false
}

// openByHandle opens (O_PATH) the inode key from its handle.
// open_by_handle_at needs a descriptor of a directory on the inode's file
// system, any one: the handle decodes the same from each (we have
// CAP_DAC_READ_SEARCH), so the first found decides. The directories above
// the old path are tried first (a mount over /srv/a hides /srv/a/b/file
// but not /srv), then the mount points of that file system.
func openByHandle(key targetKey, path string, h *unix.FileHandle) (int, bool) {
	mfd, ok := dirOnDev(key.dev, path)
	if !ok {
		return -1, false
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, *h, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		// ESTALE: the inode is gone (or its file system cannot find
		// deleted ones).
		return -1, false
	}
	if id, ok := fdID(fd); !ok || id != (fileID{key.dev, key.ino}) {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// dirOnDev opens for reading a directory on the file system dev: one
// above path, else one of its mount points.
func dirOnDev(dev uint64, path string) (int, bool) {
	for dir := parentDir(path); dir != ""; dir = parentDir(dir) {
		if fd, ok := openDirOn(dir, dev); ok {
			return fd, true
		}
	}
	mounts, err := mountinfo.Read(mountinfo.DefaultPath)
	if err != nil && len(mounts) == 0 {
		return -1, false
	}
	for _, m := range mounts {
		if unix.Mkdev(uint32(m.Major), uint32(m.Minor)) != dev {
			continue
		}
		if fd, ok := openDirOn(m.MountPoint, dev); ok {
			return fd, true
		}
	}
	return -1, false
}

// parentDir is the directory above path, "" above "/".
func parentDir(path string) string {
	if path == "/" || path == "" {
		return ""
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return "/"
}

// openDirOn opens dir for reading if it is a directory on the file system
// dev. It first takes an O_PATH descriptor without O_DIRECTORY, which
// triggers no automount on dir, and opens that for reading only once it
// is known to be on dev (open_by_handle_at refuses O_PATH descriptors).
func openDirOn(dir string, dev uint64) (int, bool) {
	pfd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if unix.Fstat(pfd, &st) != nil || uint64(st.Dev) != dev || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, false
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	return fd, true
}

// fdID is the device and inode of an open descriptor.
func fdID(fd int) (fileID, bool) {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}
