package unitfile

import (
	"os"
	"syscall"
	"time"
)

// FileCache keeps the unit files an earlier Scan read and parsed, so that a
// daemon-reload re-reads and re-parses only the files that changed: with
// 1,000 units the reading (open, fstat, read, close) and the TOML parse of
// files that did not change were most of a reload. A file is known by
// device, inode, size, modification and change time; one write of the same
// size within the file system's timestamp granularity could look unchanged,
// so a file is reused only if its timestamps were older than racyWindow
// when it was read (git's "racily clean" rule). Decoding never changes the
// parsed TOML. A unit whose files (and other inputs) did not change keeps
// its decoding too, handed out as a fresh deep copy on every Scan (see
// decodecache.go).
//
// A FileCache belongs to one caller (the manager's loop); Scan's own
// readers only look entries up while it waits for them.
type FileCache struct {
	entries map[string]cachedFile
	// now is the wall clock; tests set it to make files racy or not.
	now func() time.Time
	// dec keeps decoded units whose files did not change (decodecache.go).
	dec decodeCache
}

// racyWindow is how recent a file's timestamp may be at reading for the
// reading to be trusted later: coarse file system clocks tick every few
// milliseconds on Linux, FAT's every 2 s.
const racyWindow = 2 * time.Second

type cachedFile struct {
	stamp  FileStamp
	parsed *parsedFile
	// trusted: the file's timestamps were older than racyWindow when it
	// was read, so an equal stamp means equal content.
	trusted bool
}

// FileStamp identifies one version of a file for the cache and for
// NeedDaemonReload.
type FileStamp struct {
	Dev, Ino uint64
	Size     int64
	ModTime  time.Time
	change   int64 // ctime in ns: chmod, rename and writes move it
}

// NewFileCache gives an empty cache.
func NewFileCache() *FileCache {
	return &FileCache{entries: map[string]cachedFile{}, now: time.Now}
}

// NewFileCacheClock is NewFileCache with another wall clock: tests move it
// forward so that files they have just written are trusted at once.
func NewFileCacheClock(now func() time.Time) *FileCache {
	fc := NewFileCache()
	fc.now = now
	return fc
}

// Stamp gives the stamp path had when the last Scan with this cache read
// or checked it.
func (fc *FileCache) Stamp(path string) (FileStamp, bool) {
	if fc == nil {
		return FileStamp{}, false
	}
	e, ok := fc.entries[path]
	return e.stamp, ok && e.parsed.readErr == nil
}

// Len is the number of files the cache holds.
func (fc *FileCache) Len() int {
	if fc == nil {
		return 0
	}
	return len(fc.entries)
}

func stampOf(st *syscall.Stat_t) FileStamp {
	return FileStamp{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), change: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
}

// lookup gives the cached parse of path if the file on disk is the one
// that was read. It only reads the map: Scan's readers call it at once.
func (fc *FileCache) lookup(path string) (*parsedFile, FileStamp, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nil, FileStamp{}, false
	}
	now := stampOf(&st)
	e, ok := fc.entries[path]
	if !ok || !e.trusted || e.stamp != now {
		return nil, now, false
	}
	return e.parsed, now, true
}

// readStamped reads and parses path like parseFile, with the stamp of the
// open file taken before its content is read: a write during the read
// moves the stamp, so the next scan reads the file again. It uses the
// system calls directly: os.Open would also register the descriptor with
// the poller, a fcntl and an epoll_ctl per file for nothing.
func readStamped(path string) (*parsedFile, FileStamp, bool) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &parsedFile{readErr: &os.PathError{Op: "open", Path: path, Err: err}}, FileStamp{}, false
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return &parsedFile{readErr: &os.PathError{Op: "stat", Path: path, Err: err}}, FileStamp{}, false
	}
	data, err := readAll(fd, st.Size)
	if err != nil {
		return &parsedFile{readErr: &os.PathError{Op: "read", Path: path, Err: err}}, FileStamp{}, false
	}
	return parseData(data), stampOf(&st), true
}

// readAll reads fd to its end, expecting size bytes.
func readAll(fd int, size int64) ([]byte, error) {
	buf := make([]byte, 0, size+1)
	for {
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// remember stores a fresh reading; the caller is the only writer.
func (fc *FileCache) remember(path string, pf *parsedFile, stamp FileStamp, readAt time.Time) {
	trusted := stamp.ModTime.Before(readAt.Add(-racyWindow)) && time.Unix(0, stamp.change).Before(readAt.Add(-racyWindow))
	fc.entries[path] = cachedFile{stamp: stamp, parsed: pf, trusted: trusted}
}

// keepOnly forgets every file not in paths (files deleted or no longer on
// the search path).
func (fc *FileCache) keepOnly(paths map[string]*parsedFile) {
	for p := range fc.entries {
		if _, keep := paths[p]; !keep {
			delete(fc.entries, p)
		}
	}
}
