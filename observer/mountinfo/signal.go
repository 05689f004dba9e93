package mountinfo

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ChangeSignal tells that a mount table changed, without reading it: for
// followers that only need to know that something may have moved (the
// fanotify source resolves its marks again) and would otherwise parse a
// table they do not use. The kernel raises POLLPRI on an open mountinfo
// file when its mount namespace's table changed since the last poll of
// that file, and the poll that reports it re-arms it: so waiting costs no
// read, and changes made while nobody waits are reported by the next Wait,
// once (a burst of mounts is one wake-up).
type ChangeSignal struct {
	path string
	fd   int
	stop [2]int

	stopOnce, closeOnce sync.Once
}

// OpenChangeSignal opens the mountinfo file at path (DefaultPath if empty):
// Wait reports changes of that process's mount namespace made after this
// call.
func OpenChangeSignal(path string) (*ChangeSignal, error) {
	if path == "" {
		path = DefaultPath
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: open %s: %w", path, err)
	}
	c := &ChangeSignal{path: path, fd: fd}
	if err := unix.Pipe2(c.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mountinfo: pipe: %w", err)
	}
	return c, nil
}

// Wait blocks until the table changed since the last Wait (or the open)
// and returns true, or returns false once Stop was called. Only one
// goroutine may wait at a time; the waiting thread sits in poll(2).
func (c *ChangeSignal) Wait() (bool, error) {
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLPRI | unix.POLLERR}, {Fd: int32(c.stop[0]), Events: unix.POLLIN}}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("mountinfo: poll %s: %w", c.path, err)
		}
		if fds[1].Revents != 0 {
			return false, nil
		}
		if fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0 {
			return true, nil
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return false, fmt.Errorf("mountinfo: poll %s: descriptor closed", c.path)
		}
	}
}

// Stop makes every Wait, present and future, return false.
func (c *ChangeSignal) Stop() {
	c.stopOnce.Do(func() { unix.Write(c.stop[1], []byte{1}) })
}

// Close stops and releases the descriptors; call it once no Wait runs any
// more (after Stop and the waiter's return).
func (c *ChangeSignal) Close() error {
	c.Stop()
	var err error
	c.closeOnce.Do(func() {
		err = unix.Close(c.fd)
		unix.Close(c.stop[0])
		unix.Close(c.stop[1])
	})
	return err
}
