package units

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The removal behind `systemctl clean` (clean.go). It is os.RemoveAll's
// job done with the *at calls (a symlink is removed, never followed, and
// a directory swapped for a symlink meanwhile is not entered), with two
// differences systemd's rm_rf also has: it stops at mount points (a file
// system mounted inside a state directory keeps its contents; the removal
// reports it), and it can be told to stop. timeout-clean sets stop: the
// removal then makes no further change, whatever it was doing. A call
// already blocked in the kernel (a file system that does not answer)
// stays blocked until it returns, in its goroutine only.

// errCleanAbandoned ends a removal that was told to stop.
var errCleanAbandoned = errors.New("removal abandoned")

// removeTree removes path and everything below it, but not what lies
// on another file system mounted below it; nothing when path does not
// exist. It checks stop before every change.
func removeTree(path string, stop *atomic.Bool) error {
	path = filepath.Clean(path)
	parent, name := filepath.Split(path)
	if name == "" || name == "." || name == ".." || !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not a directory of a unit to remove", path)
	}
	if stop.Load() {
		return errCleanAbandoned
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	return removeAt(pfd, name, path, -1, stop)
}

// removeAt removes name in the directory dfd (path says where, for
// errors). dev is the file system the removal stays on; -1 takes the
// one of name itself.
func removeAt(dfd int, name, path string, dev int64, stop *atomic.Bool) error {
	if stop.Load() {
		return errCleanAbandoned
	}
	err := unix.Unlinkat(dfd, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EISDIR), errors.Is(err, unix.EPERM):
		// A directory (some file systems say EPERM for it).
	default:
		return &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		// Not a directory after all (replaced meanwhile, or EPERM for
		// another reason): unlinking it is all there is to do.
		if stop.Load() {
			return errCleanAbandoned
		}
		if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unlink", Path: path, Err: err}
		}
		return nil
	case err != nil:
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if dev == -1 {
		dev = int64(st.Dev)
	} else if int64(st.Dev) != dev {
		return &os.PathError{Op: "remove", Path: path, Err: errors.New("a mount point; what is mounted there stays")}
	}
	// A directory read while its entries go may skip some on some file
	// systems: read it again while the last pass removed anything.
	for pass := 0; ; pass++ {
		removed, err := removeEntries(dir, fd, path, dev, stop)
		if err != nil {
			return err
		}
		if stop.Load() {
			return errCleanAbandoned
		}
		err = unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.ENOTEMPTY) && removed > 0 && pass < 8:
			if _, err := dir.Seek(0, io.SeekStart); err != nil {
				return &os.PathError{Op: "seek", Path: path, Err: err}
			}
			continue
		}
		return &os.PathError{Op: "rmdir", Path: path, Err: err}
	}
}

// removeEntries removes what the directory dir (its fd) holds and says
// how many entries it found; the first error, after trying all of them.
func removeEntries(dir *os.File, fd int, path string, dev int64, stop *atomic.Bool) (int, error) {
	var first error
	n := 0
	for {
		names, rerr := dir.Readdirnames(1024)
		for _, e := range names {
			n++
			if err := removeAt(fd, e, filepath.Join(path, e), dev, stop); err != nil {
				if errors.Is(err, errCleanAbandoned) {
					return n, err
				}
				if first == nil {
					first = err
				}
			}
		}
		if rerr == io.EOF || (rerr == nil && len(names) == 0) {
			return n, first
		}
		if rerr != nil {
			if first == nil {
				first = &os.PathError{Op: "readdir", Path: path, Err: rerr}
			}
			return n, first
		}
	}
}
