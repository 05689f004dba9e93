package units

// PID files of forking services, read as systemd 252 reads them
// (src/core/service.c: service_load_pid_file, service_demand_pid_file,
// service_search_main_pid):
//
//   - After the start command exits successfully, the PID file is read. If
//     it cannot be read yet (the daemon writes it after its parent exited),
//     the service stays in "start" and watches the file with inotify until
//     it names an acceptable process, timeout-start expires (result
//     timeout), or, with a cgroup, the unit has no process left ("Daemon
//     never wrote its PID file", result protocol).
//   - A PID naming a process outside the unit is accepted only when the
//     PID file is owned by root and was reached without an unsafe symlink
//     (one owned by another user than root leading to a file of another
//     owner): an unprivileged daemon cannot make the manager adopt, and
//     later kill, a process of somebody else.
//   - Without pid-file, guess-main-pid takes the unit's only process whose
//     parent is the manager (daemons' own workers are not candidates).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/inotify"
	"vigil/units/procfs"
)

// pidFileMaxRead bounds how much of a PID file is read: a PID is a
// handful of digits, and the file is the daemon's to fill.
const pidFileMaxRead = 4096

// maxSymlinkHops is how many symlinks a PID file's path may pass through.
const maxSymlinkHops = 32

var (
	errPIDFileEmpty   = errors.New("no PID in the file")
	errPIDUnsuitable  = errors.New("unsuitable main PID")
	errPIDFileRefused = errors.New("PID file refused")
)

// parsePIDFile takes the PID from the text of a PID file: the first line,
// blanks trimmed, a decimal number from 1 to the largest pid_t.
func parsePIDFile(data []byte) (int, error) {
	line := string(data)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return 0, errPIDFileEmpty
	}
	for _, c := range line {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a PID", line)
		}
	}
	pid, err := strconv.ParseInt(line, 10, 32)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%q is not a PID", line)
	}
	return int(pid), nil
}

// unsafeTransition is systemd's rule for following a path: from a
// root-owned component anything goes; from another owner's component
// only to one of the same owner.
func unsafeTransition(from, to *unix.Stat_t) bool {
	return from.Uid != 0 && from.Uid != to.Uid
}

// openPIDFile opens an absolute path component by component, following
// symlinks itself (as systemd's chase_symlinks with CHASE_SAFE does), and
// reports whether the walk passed an unsafe transition. Only a regular
// file is opened: a FIFO or device there would block the loop.
func openPIDFile(path string) (f *os.File, questionable bool, err error) {
	if !filepath.IsAbs(path) {
		return nil, false, fmt.Errorf("open %s: not an absolute path", path)
	}
	openRoot := func() (int, unix.Stat_t, error) {
		var st unix.Stat_t
		fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, st, fmt.Errorf("open /: %w", err)
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, st, fmt.Errorf("stat /: %w", err)
		}
		return fd, st, nil
	}
	fd, prev, err := openRoot()
	if err != nil {
		return nil, false, err
	}
	defer func() { unix.Close(fd) }()
	todo, hops := path, 0
	for {
		todo = strings.TrimLeft(todo, "/")
		if todo == "" {
			break
		}
		name := todo
		if i := strings.IndexByte(todo, '/'); i >= 0 {
			name, todo = todo[:i], todo[i:]
		} else {
			todo = ""
		}
		if name == "." {
			continue
		}
		child, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, questionable, fmt.Errorf("open %s: %s: %w", path, name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(child, &st); err != nil {
			unix.Close(child)
			return nil, questionable, fmt.Errorf("stat %s: %s: %w", path, name, err)
		}
		if unsafeTransition(&prev, &st) {
			questionable = true
		}
		prev = st
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			unix.Close(fd)
			fd = child
			continue
		}
		if hops++; hops > maxSymlinkHops {
			unix.Close(child)
			return nil, questionable, fmt.Errorf("open %s: %w", path, unix.ELOOP)
		}
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(child, "", buf)
		unix.Close(child)
		if err != nil {
			return nil, questionable, fmt.Errorf("read link %s in %s: %w", name, path, err)
		}
		target := string(buf[:n])
		if filepath.IsAbs(target) {
			rootFD, rootSt, err := openRoot()
			if err != nil {
				return nil, questionable, err
			}
			if unsafeTransition(&prev, &rootSt) {
				questionable = true
			}
			unix.Close(fd)
			fd, prev = rootFD, rootSt
		}
		todo = target + "/" + todo
	}
	if prev.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, questionable, fmt.Errorf("open %s: not a regular file", path)
	}
	// The O_PATH descriptor cannot be read: open the very file it names.
	f, err = os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, questionable, fmt.Errorf("open %s: %w", path, err)
	}
	return f, questionable, nil
}

// procStat reads /proc/PID/stat.
func procStat(pid int) (procfs.Stat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procfs.Stat{}, false
	}
	st, err := procfs.ParseStat(data)
	return st, err == nil
}

// suitableMainPID says whether pid may become the main process: an error
// when never (the manager, the control process, a dead process), false
// when it is not the unit's own (then the PID file decides).
func (s *service) suitableMainPID(pid int, logf func(string, ...any)) (bool, error) {
	if pid == 1 || pid == os.Getpid() {
		logf("New main PID %d is the manager, refusing.", pid)
		return false, errPIDUnsuitable
	}
	if pid == s.controlPID {
		logf("New main PID %d is the control process, refusing.", pid)
		return false, errPIDUnsuitable
	}
	if st, ok := procStat(pid); !ok || st.State == 'Z' {
		logf("New main PID %d does not exist or is a zombie.", pid)
		return false, errPIDUnsuitable
	}
	owner, _ := s.m.notifySender(pid)
	return owner == s, nil
}

// loadPIDFile reads the PID file and makes the process it names the main
// process if systemd's rules allow. mayWarn logs why the file cannot be
// used yet (else only refusals are logged, as systemd's debug level is
// not ours). changed is true when the main PID was set anew.
func (s *service) loadPIDFile(mayWarn bool) (changed bool, err error) {
	logf := func(format string, args ...any) {
		if mayWarn {
			s.u.infof(format, args...)
		}
	}
	path := s.cfg.PIDFile
	f, questionable, err := openPIDFile(path)
	if err != nil {
		logf("PID file %s not readable (yet?) after %s: %v", path, s.state, err)
		return false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, pidFileMaxRead))
	if err != nil {
		logf("PID file %s not readable (yet?) after %s: %v", path, s.state, err)
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	pid, err := parsePIDFile(data)
	if err != nil {
		logf("Failed to parse PID from file %s: %v", path, err)
		return false, fmt.Errorf("PID file %s: %w", path, err)
	}
	if s.mainPID != 0 && pid == s.mainPID {
		return false, nil
	}
	ours, err := s.suitableMainPID(pid, logf)
	if err != nil {
		return false, err
	}
	if !ours {
		if questionable {
			s.u.errorf("Refusing to accept PID outside of service control group, acquired through unsafe symlink chain: %s", path)
			return false, errPIDFileRefused
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return false, fmt.Errorf("stat %s: %w", path, err)
		}
		if st.Uid != 0 {
			s.u.errorf("New main PID %d does not belong to service, and PID file is not owned by root. Refusing.", pid)
			return false, errPIDFileRefused
		}
		s.u.warnf("New main PID %d does not belong to service, but we'll accept it since PID file is owned by root.", pid)
	}
	if s.mainPID != 0 {
		s.u.debugf("Main PID changing: %d -> %d", s.mainPID, pid)
		s.m.unwatchPID(s.mainPID)
	}
	s.mainPID = pid
	s.m.watchPID(pid, s)
	if st, ok := procStat(pid); ok && st.PPID != os.Getpid() {
		s.u.warnf("Supervising process %d which is not our child. We'll most likely not notice when it exits.", pid)
	}
	return true, nil
}

// searchMainPID guesses the main process when nothing names it
// (guess-main-pid): the unit's only process whose parent is the manager.
func (s *service) searchMainPID() {
	if s.mainPID != 0 || !s.cfg.GuessMainPID {
		return
	}
	me, found := os.Getpid(), 0
	for _, pid := range s.members() {
		if pid == s.controlPID {
			continue
		}
		st, ok := procStat(pid)
		if !ok || st.PPID != me || st.State == 'Z' {
			continue
		}
		if found != 0 {
			return // more than one daemonized process: no way to tell
		}
		found = pid
	}
	if found != 0 {
		s.u.debugf("Main PID guessed: %d", found)
		s.mainPID = found
		s.m.watchPID(found, s)
	}
}

// pidFileWatch is the inotify watch of a PID file not written yet: the
// file itself once it exists, the deepest existing directory above it
// for its creation, and every existing ancestor for being moved away.
type pidFileWatch struct {
	watcher *pathWatchers
	ids     map[inotify.WatchID]bool
	obs     observer.ObserverID
}

// demandPIDFile waits for the PID file (systemd's service_demand_pid_file):
// it watches the file, then reads it once more in case it appeared before
// the watch was set. It reports false if the service cannot wait (the
// watch failed, or the unit has nothing left that could write the file);
// the caller then fails the start.
func (s *service) demandPIDFile() bool {
	if err := s.watchPIDFile(); err != nil {
		s.u.errorf("Failed to set a watch for PID file %s: %v", s.cfg.PIDFile, err)
		s.unwatchPIDFile()
		return false
	}
	if s.retryPIDFile() {
		return true
	}
	if s.cgroup != "" && !s.remaining() {
		s.unwatchPIDFile()
		return false
	}
	// Without a cgroup the unit's processes cannot all be seen (a daemon
	// leaves its session), so only timeout-start ends the wait.
	return true
}

// watchPIDFile (re)sets the watches of the PID file.
func (s *service) watchPIDFile() error {
	pw := s.pidFileWatch
	if pw == nil {
		w, err := s.m.pathWatcher()
		if err != nil {
			return err
		}
		pw = &pidFileWatch{watcher: w, ids: map[inotify.WatchID]bool{}}
		obs, err := s.m.loop.Register(observer.Observer{
			Guest:  "supervisor",
			Name:   "PID file of " + s.u.Name,
			Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{inotify.SourceName}}}},
			Notify: s.onPIDFileChange,
		})
		if err != nil {
			return err
		}
		pw.obs = obs
		s.pidFileWatch = pw
	}
	if pw.watcher.w == nil {
		return fmt.Errorf("watch %s: the manager's inotify watcher is closed", s.cfg.PIDFile)
	}
	for id := range pw.ids {
		pw.watcher.w.Remove(id)
	}
	clear(pw.ids)
	path := filepath.Clean(s.cfg.PIDFile)
	var chain []string
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		chain = append([]string{dir}, chain...)
		if dir == "/" || dir == "." {
			break
		}
	}
	add := func(p string, mask uint32) error {
		id, err := pw.watcher.w.Add(p, mask)
		if err == nil {
			pw.ids[id] = true
		}
		return err
	}
	missing := func(err error) bool {
		return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EACCES)
	}
	deepest := ""
	for _, dir := range chain {
		if err := add(dir, unix.IN_MOVE_SELF|unix.IN_DELETE_SELF); err != nil {
			if missing(err) {
				break
			}
			return err
		}
		deepest = dir
	}
	if deepest == "" {
		return fmt.Errorf("watch %s: no directory above it exists", path)
	}
	if err := add(deepest, parentWatchFlags|unix.IN_CLOSE_WRITE|unix.IN_MOVED_FROM|unix.IN_DELETE); err != nil && !missing(err) {
		return err
	}
	if deepest == filepath.Dir(path) {
		// systemd watches with PathModified: some daemons keep the file
		// open and write it late, so a close is not all there is.
		if err := add(path, specFlags(specModified)); err != nil && !missing(err) {
			return err
		}
	}
	return nil
}

// unwatchPIDFile ends the wait for the PID file.
func (s *service) unwatchPIDFile() {
	pw := s.pidFileWatch
	if pw == nil {
		return
	}
	s.pidFileWatch = nil
	if pw.watcher.w != nil {
		for id := range pw.ids {
			pw.watcher.w.Remove(id)
		}
	}
	if pw.obs != 0 {
		s.m.loop.Unregister(pw.obs)
	}
}

// onPIDFileChange reacts to a change on the way to the PID file: read it
// again; if it still cannot be used, watch again (a directory on the way
// may have appeared) and read once more.
func (s *service) onPIDFileChange(ev *observer.Event) {
	pw := s.pidFileWatch
	c, ok := ev.Payload.(*inotify.Change)
	if pw == nil || !ok {
		return
	}
	mine := false
	for _, id := range c.Watches {
		if pw.ids[id] {
			mine = true
			break
		}
	}
	if !mine || (s.state != svcStart && s.state != svcStartPost) {
		return
	}
	if s.retryPIDFile() {
		return
	}
	if err := s.watchPIDFile(); err != nil {
		s.u.errorf("Failed to set a watch for PID file %s: %v", s.cfg.PIDFile, err)
		s.unwatchPIDFile()
		s.fail(resultResources, fmt.Sprintf("cannot watch PID file %s: %v", s.cfg.PIDFile, err))
		return
	}
	s.retryPIDFile()
}

// retryPIDFile reads the PID file while waiting for it; once it names an
// acceptable process the service is running.
func (s *service) retryPIDFile() bool {
	if s.pidFileWatch == nil || (s.state != svcStart && s.state != svcStartPost) {
		return false
	}
	if _, err := s.loadPIDFile(false); err != nil {
		return false
	}
	s.unwatchPIDFile()
	s.u.debugf("PID file %s names main PID %d.", s.cfg.PIDFile, s.mainPID)
	s.execStart = time.Now()
	s.enterRunning()
	return true
}

// pidFileNeverWritten ends a wait for the PID file when the unit's cgroup
// has emptied: nothing is left that could write it.
func (s *service) pidFileNeverWritten() bool {
	if s.pidFileWatch == nil || s.cgroup == "" || s.remaining() {
		return false
	}
	s.u.warnf("Daemon never wrote its PID file. Failing.")
	s.unwatchPIDFile()
	s.fail(resultProtocol, fmt.Sprintf("the daemon never wrote its PID file %s", s.cfg.PIDFile))
	return true
}
