// Package clock is the observer's source of wall-clock changes: a
// CLOCK_REALTIME timerfd armed with TFD_TIMER_CANCEL_ON_SET, which the kernel
// cancels the moment anyone sets the clock (date -s, NTP steps), and an
// inotify watch on /etc/localtime for time zone changes. Realtime timers
// (calendar events) re-compute their next elapse when these events come,
// instead of drifting or firing twice.
package clock

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Watcher posts events of source "clock": kind "changed" when the realtime
// clock was set, kind "timezone" when /etc/localtime changed.
type Watcher struct {
	source   *observer.Source
	tfd      int
	ifd      int
	stop     [2]int // a pipe that wakes the poll loop on Close
	zonePath string
	// zoneErr is why the zone watch could not be set up (nil when it
	// was, or was not asked for): the clock events go on without it.
	zoneErr error
	once    sync.Once
	done    chan struct{}
	// reader runs run, again after a panic or an error (observer.Keep);
	// runs counts its runs (owned by the reader goroutine).
	reader *observer.Keeper
	runs   int
}

// Options configure a Watcher.
type Options struct {
	// LocaltimePath is watched for time zone changes; default
	// /etc/localtime. Empty disables the zone watch when set to "-".
	LocaltimePath string
}

// Start arms the timerfd and the zone watch and begins posting.
func Start(loop *observer.Loop, opts Options) (*Watcher, error) {
	if opts.LocaltimePath == "" {
		opts.LocaltimePath = "/etc/localtime"
	}
	w := &Watcher{source: loop.NewSource("clock", 64), tfd: -1, ifd: -1, zonePath: opts.LocaltimePath, done: make(chan struct{})}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("clock: timerfd: %w", err)
	}
	w.tfd = tfd
	if err := w.arm(); err != nil {
		unix.Close(tfd)
		return nil, err
	}
	if opts.LocaltimePath != "-" {
		if ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err == nil {
			// Watch the directory: /etc/localtime is usually replaced (a
			// new symlink renamed over it), not written.
			if _, err := unix.InotifyAddWatch(ifd, filepath.Dir(opts.LocaltimePath), unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_DELETE|unix.IN_ATTRIB); err == nil {
				w.ifd = ifd
			} else {
				unix.Close(ifd)
				w.zoneErr = fmt.Errorf("clock: watch %s: %w", filepath.Dir(opts.LocaltimePath), err)
			}
		} else {
			// Out of inotify instances (fs.inotify.max_user_instances
			// counts every process of the user).
			w.zoneErr = fmt.Errorf("clock: inotify for %s: %w", opts.LocaltimePath, err)
		}
	}
	if err := unix.Pipe2(w.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("clock: pipe: %w", err)
	}
	w.reader = w.source.Keep("clock watcher", observer.KeepOptions{}, w.run)
	go func() { <-w.reader.Done(); close(w.done) }()
	return w, nil
}

// ZoneWatchErr tells why time zone changes are not watched: nil when they
// are (or LocaltimePath was "-"). Clock changes are reported either way.
func (w *Watcher) ZoneWatchErr() error { return w.zoneErr }

// arm sets the timerfd to a far-away absolute time with CANCEL_ON_SET: it
// never expires, it only gets cancelled when the clock is set.
func (w *Watcher) arm() error {
	spec := unix.ItimerSpec{Value: unix.Timespec{Sec: 1 << 40}}
	if err := unix.TimerfdSettime(w.tfd, unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET, &spec, nil); err != nil {
		return fmt.Errorf("clock: arm timerfd: %w", err)
	}
	return nil
}

// run watches until Close (nil) or a failure, after which observer.Keep
// runs it again.
func (w *Watcher) run() error {
	// Armed again on a restart: the failure that ended the last run may
	// have been the arming. (Not on the first run: Start armed it, and a
	// clock set in between would be forgotten.)
	if w.runs++; w.runs > 1 {
		if err := w.arm(); err != nil {
			return err
		}
	}
	fds := []unix.PollFd{{Fd: int32(w.tfd), Events: unix.POLLIN}, {Fd: int32(w.stop[0]), Events: unix.POLLIN}}
	if w.ifd >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(w.ifd), Events: unix.POLLIN})
	}
	buf := make([]byte, 4096)
	for {
		for i := range fds {
			fds[i].Revents = 0
		}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("clock: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents != 0 {
			// A cancelled timerfd reads ECANCELED: the clock was set.
			_, err := unix.Read(w.tfd, buf[:8])
			if errors.Is(err, unix.ECANCELED) {
				w.source.Post(observer.Event{Kind: "changed"})
			}
			if err := w.arm(); err != nil {
				return err
			}
		}
		if len(fds) > 2 && fds[2].Revents != 0 {
			if changedZone(w.ifd, buf, filepath.Base(w.zonePath)) {
				w.source.Post(observer.Event{Kind: "timezone"})
			}
		}
	}
}

// changedZone drains inotify events and reports whether one named file.
func changedZone(fd int, buf []byte, name string) bool {
	hit := false
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			return hit
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			nameLen := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
			start := off + unix.SizeofInotifyEvent
			end := start + nameLen
			if end > n {
				break
			}
			ev := string(trimNUL(buf[start:end]))
			if ev == name {
				hit = true
			}
			off = end
		}
	}
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// Close stops the watcher.
func (w *Watcher) Close() {
	w.once.Do(func() {
		w.reader.Stop()
		unix.Write(w.stop[1], []byte{1})
		<-w.done
		w.closeFDs()
		unix.Close(w.stop[0])
		unix.Close(w.stop[1])
	})
}

func (w *Watcher) closeFDs() {
	if w.tfd >= 0 {
		unix.Close(w.tfd)
	}
	if w.ifd >= 0 {
		unix.Close(w.ifd)
	}
}
