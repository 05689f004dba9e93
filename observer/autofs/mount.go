package autofs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Event kinds a Mount posts.
const (
	KindMissing = "missing"
	KindExpire  = "expire"
)

// Options configure one direct autofs mount.
type Options struct {
	// Where is the mount point; created (with its parents) if missing.
	Where string
	// DirectoryMode is the mode of directories created for Where.
	DirectoryMode os.FileMode
	// ExtraOptions are appended to the autofs mount options.
	ExtraOptions string
	// IdleTimeout is the kernel's expire timeout: a mount unused for that
	// long is expired (the Mount asks the kernel regularly). Zero: never.
	IdleTimeout time.Duration
	// Source receives the requests as held events. Required.
	Source *observer.Source
	// RequestDeadline is each request's Hold.Deadline; zero means the
	// deciders' own timeouts alone bound the wait.
	RequestDeadline time.Duration
	// Attrs are added to every request's attributes (the unit that
	// serves the mount, say), so observers can match on them.
	Attrs map[string]string
	// FSName is the source shown in /proc/self/mountinfo; default "vigil".
	FSName string
	// Logf receives problems with packets and the expire loop.
	Logf func(format string, args ...any)
}

// Mount is one direct autofs mount served by this process.
type Mount struct {
	where string
	ctl   *Control
	// kernel answers tokens: ctl, or a fake in tests.
	kernel  answerer
	ioctlFD int
	devID   uint64
	pipe    *os.File
	src     *observer.Source
	attrs   map[string]string
	logf    func(format string, args ...any)

	deadline atomic.Int64
	timeouts chan time.Duration
	// idle is the current expire timeout, which a restarted expire loop
	// starts from (timeouts only carries changes).
	idle atomic.Int64
	// expirer keeps the expire loop; beforeExpire, when set, runs before
	// each EXPIRE (tests make it panic).
	expirer      *observer.Keeper
	beforeExpire atomic.Pointer[func()]
	done         chan struct{}
	wg           sync.WaitGroup

	requests atomic.Uint64
	failed   atomic.Uint64

	mu sync.Mutex
	// pending holds the tokens the kernel waits on: each is answered
	// exactly once, by its hold's release or by Close.
	pending map[uint64]PacketType
	closed  bool
}

// answerer is the part of Control that answers requests.
type answerer interface {
	Ready(ioctlFD int, token uint64) error
	Fail(ioctlFD int, token uint64, errno unix.Errno) error
}

// Start mounts an autofs trigger at opts.Where and serves it until Close.
func Start(opts Options) (*Mount, error) {
	if opts.Source == nil {
		return nil, fmt.Errorf("autofs %s: no event source", opts.Where)
	}
	if !filepath.IsAbs(opts.Where) {
		return nil, fmt.Errorf("autofs %q: mount point must be an absolute path", opts.Where)
	}
	where := filepath.Clean(opts.Where)
	pgrp := unix.Getpgrp()
	if pgrp == 0 {
		return nil, fmt.Errorf("autofs %s: this process is in process group 0, which the kernel cannot name as the autofs daemon; it must call setsid first", where)
	}
	if opts.DirectoryMode == 0 {
		opts.DirectoryMode = 0o755
	}
	if opts.FSName == "" {
		opts.FSName = "vigil"
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(where, opts.DirectoryMode); err != nil {
		return nil, fmt.Errorf("autofs %s: %w", where, err)
	}
	if fi, err := os.Lstat(where); err != nil {
		return nil, fmt.Errorf("autofs %s: %w", where, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("autofs %s: mount point is a %s, not a directory", where, fi.Mode().Type())
	}
	ctl, err := OpenControl()
	if err != nil {
		return nil, err
	}
	// Asked of the kernel, not of a mount table that may lag behind.
	if info, err := ctl.IsMountPoint(where); err == nil && info.MountPoint {
		ctl.Close()
		if info.Magic == SuperMagic {
			return nil, fmt.Errorf("autofs %s: an autofs mount is already there (left by an earlier daemon?)", where)
		}
		return nil, fmt.Errorf("autofs %s: already a mount point (file system magic %#x); refusing to cover it", where, info.Magic)
	}
	var p [2]int
	// O_DIRECT makes the pipe packet-based: each read returns one packet.
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_DIRECT); err != nil {
		ctl.Close()
		return nil, fmt.Errorf("autofs %s: pipe: %w", where, err)
	}
	// Only our end is non-blocking (the kernel writes through the other).
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		ctl.Close()
		return nil, fmt.Errorf("autofs %s: pipe: %w", where, err)
	}
	data := fmt.Sprintf("fd=%d,pgrp=%d,minproto=%d,maxproto=%d,direct", p[1], pgrp, ProtocolVersion, ProtocolVersion)
	if opts.ExtraOptions != "" {
		data += "," + opts.ExtraOptions
	}
	err = unix.Mount(opts.FSName, where, "autofs", 0, data)
	// The kernel holds its own reference to the write end now.
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		ctl.Close()
		return nil, fmt.Errorf("autofs %s: mount (%s): %w", where, data, err)
	}
	m := &Mount{where: where, ctl: ctl, kernel: ctl, ioctlFD: -1, src: opts.Source, logf: logf, attrs: opts.Attrs,
		pipe: os.NewFile(uintptr(p[0]), "autofs-pipe:"+where), pending: map[uint64]PacketType{},
		timeouts: make(chan time.Duration, 1), done: make(chan struct{})}
	undo := func(err error) (*Mount, error) {
		if m.ioctlFD >= 0 {
			ctl.Catatonic(m.ioctlFD)
			ctl.CloseMount(m.ioctlFD)
		}
		unix.Unmount(where, unix.MNT_DETACH)
		m.pipe.Close()
		ctl.Close()
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat(where, &st); err != nil {
		return undo(fmt.Errorf("autofs %s: %w", where, err))
	}
	m.devID = st.Dev
	if m.ioctlFD, err = ctl.OpenMount(where, m.devID); err != nil {
		return undo(err)
	}
	major, minor, err := ctl.ProtocolVersion(m.ioctlFD)
	if err != nil {
		return undo(fmt.Errorf("autofs %s: %w", where, err))
	}
	if major != ProtocolVersion {
		return undo(fmt.Errorf("autofs %s: kernel negotiated protocol %d.%d, Vigil speaks %d", where, major, minor, ProtocolVersion))
	}
	if err := ctl.SetTimeout(m.ioctlFD, opts.IdleTimeout); err != nil {
		return undo(fmt.Errorf("autofs %s: %w", where, err))
	}
	m.deadline.Store(int64(opts.RequestDeadline))
	m.idle.Store(int64(opts.IdleTimeout))
	m.timeouts <- opts.IdleTimeout
	m.wg.Add(2)
	// The request reader is run again after a panic (observer.Keep): with
	// it gone every access under the mount point would sleep for ever.
	reader := m.src.Keep("autofs reader "+m.where, observer.KeepOptions{Logf: m.logf}, m.read)
	go func() {
		<-m.done
		reader.Stop()
	}()
	go func() { <-reader.Done(); m.wg.Done() }()
	// The expire loop is kept too: without it an idle mount would stay
	// mounted for ever.
	m.expirer = m.src.Keep("autofs expiry "+m.where, observer.KeepOptions{Logf: m.logf}, func() error { m.expireLoop(); return nil })
	go func() {
		<-m.done
		m.expirer.Stop()
	}()
	go func() { <-m.expirer.Done(); m.wg.Done() }()
	return m, nil
}

// Where is the mount point.
func (m *Mount) Where() string { return m.where }

// DevID is the autofs mount's device number.
func (m *Mount) DevID() uint64 { return m.devID }

// Requests counts the requests read; Failed those answered with FAIL.
func (m *Mount) Requests() uint64 { return m.requests.Load() }

// Failed counts the requests answered with FAIL.
func (m *Mount) Failed() uint64 { return m.failed.Load() }

// Pending counts the tokens not answered yet.
func (m *Mount) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// SetRequestDeadline changes the Hold.Deadline of later requests.
func (m *Mount) SetRequestDeadline(d time.Duration) { m.deadline.Store(int64(d)) }

// SetIdleTimeout changes the expire timeout (zero: never expire).
func (m *Mount) SetIdleTimeout(d time.Duration) error {
	if err := m.ctl.SetTimeout(m.ioctlFD, d); err != nil {
		return fmt.Errorf("autofs %s: %w", m.where, err)
	}
	m.idle.Store(int64(d))
	select {
	case <-m.timeouts:
	default:
	}
	m.timeouts <- d
	return nil
}

// read turns packets into held events until the pipe closes.
// read reads requests until the pipe is closed or at its end (nil); a
// panic or a read error ends it too, and observer.Keep runs it again.
func (m *Mount) read() error {
	buf := make([]byte, 4096)
	for {
		n, err := m.pipe.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				return fmt.Errorf("autofs %s: reading requests: %w", m.where, err)
			}
			return nil
		}
		m.handle(buf[:n])
	}
}

// handle posts one packet, or answers it FAIL at once if it cannot be
// served: the accessor gets an error instead of sleeping forever.
func (m *Mount) handle(b []byte) {
	p, err := ParsePacket(b)
	kind := ""
	if err == nil {
		switch p.Type {
		case TypeMissingDirect:
			kind = KindMissing
		case TypeExpireDirect:
			kind = KindExpire
		default:
			err = fmt.Errorf("%w: %s on a direct mount", ErrType, p.Type)
		}
	}
	if err != nil {
		if !p.HasToken {
			m.logf("autofs %s: %v; cannot answer it", m.where, err)
			return
		}
		m.logf("autofs %s: %v; answering token %d with FAIL", m.where, err, p.Token)
		m.failed.Add(1)
		if ferr := m.kernel.Fail(m.ioctlFD, p.Token, unix.ENOENT); ferr != nil {
			m.logf("autofs %s: %v", m.where, ferr)
		}
		return
	}
	m.requests.Add(1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.failed.Add(1)
		m.kernel.Fail(m.ioctlFD, p.Token, unix.ENOENT)
		return
	}
	m.pending[p.Token] = p.Type
	m.mu.Unlock()
	token := p.Token
	attrs := make(map[string]string, len(m.attrs)+5)
	for k, v := range m.attrs {
		attrs[k] = v
	}
	attrs["where"] = m.where
	attrs["token"] = strconv.FormatUint(token, 10)
	attrs["pid"] = strconv.FormatUint(uint64(p.PID), 10)
	attrs["uid"] = strconv.FormatUint(uint64(p.UID), 10)
	attrs["gid"] = strconv.FormatUint(uint64(p.GID), 10)
	m.src.Post(observer.Event{
		Kind:    kind,
		Attrs:   attrs,
		Payload: p,
		Hold: &observer.Hold{
			Release:  func(v observer.Verdict) { m.answer(token, v) },
			Deadline: time.Duration(m.deadline.Load()),
			Default:  observer.Deny,
		},
	})
}

// answer tells the kernel the verdict on token, once. A missing request
// denied fails its accessors with EHOSTDOWN (the mount could not be made);
// an expire request denied keeps the mount.
func (m *Mount) answer(token uint64, v observer.Verdict) {
	m.mu.Lock()
	typ, ok := m.pending[token]
	delete(m.pending, token)
	m.mu.Unlock()
	if !ok {
		return // answered already (by Close)
	}
	var err error
	if v == observer.Allow {
		err = m.kernel.Ready(m.ioctlFD, token)
	} else {
		m.failed.Add(1)
		errno := unix.EHOSTDOWN
		if typ == TypeExpireDirect {
			errno = unix.EBUSY
		}
		err = m.kernel.Fail(m.ioctlFD, token, errno)
	}
	if err != nil {
		m.logf("autofs %s: %v", m.where, err)
	}
}

// expirePeriod is how often the kernel is asked to expire an idle mount:
// a quarter of the timeout, so a mount goes at most that much after it.
func expirePeriod(timeout time.Duration) time.Duration {
	p := timeout / 4
	switch {
	case timeout <= 0:
		return 0
	case p < 250*time.Millisecond:
		return 250 * time.Millisecond
	case p > time.Minute:
		return time.Minute
	}
	return p
}

// expireLoop asks the kernel, every expirePeriod, to expire the mount.
// The EXPIRE ioctl blocks until the expire request it raised is answered,
// which is why it runs here and never on the loop.
func (m *Mount) expireLoop() {
	var tick *time.Ticker
	var tickC <-chan time.Time
	if p := expirePeriod(time.Duration(m.idle.Load())); p > 0 {
		tick = time.NewTicker(p)
		tickC = tick.C
	}
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	lastErr := ""
	for {
		select {
		case <-m.done:
			return
		case d := <-m.timeouts:
			if tick != nil {
				tick.Stop()
				tick, tickC = nil, nil
			}
			if p := expirePeriod(d); p > 0 {
				tick = time.NewTicker(p)
				tickC = tick.C
			}
		case <-tickC:
			if hook := m.beforeExpire.Load(); hook != nil {
				(*hook)()
			}
			for {
				expired, err := m.ctl.Expire(m.ioctlFD, ExpireNormal)
				if err != nil {
					select {
					case <-m.done:
						return
					default:
					}
					if err.Error() != lastErr {
						m.logf("autofs %s: %v", m.where, err)
						lastErr = err.Error()
					}
					break
				}
				lastErr = ""
				if !expired {
					break
				}
			}
		}
	}
}

// Close stops serving: every request not answered yet is answered FAIL
// (ENOENT), the mount becomes catatonic (later accesses see the empty
// trigger directory instead of waiting for a daemon that is gone) and the
// descriptors are closed. The
// autofs mount itself stays; Unmount removes it.
func (m *Mount) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	var errs []error
	for token := range pending {
		m.failed.Add(1)
		if err := m.kernel.Fail(m.ioctlFD, token, unix.ENOENT); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.ctl.Catatonic(m.ioctlFD); err != nil && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, err)
	}
	close(m.done)
	m.pipe.Close()
	m.wg.Wait()
	m.ctl.CloseMount(m.ioctlFD)
	m.ctl.Close()
	if len(errs) > 0 {
		return fmt.Errorf("autofs %s: close: %w", m.where, errors.Join(errs...))
	}
	return nil
}

// Unmount removes the autofs mount at Where. It refuses when another file
// system is still mounted on it (the caller unmounts that first).
func (m *Mount) Unmount() error {
	return UnmountTrigger(m.where)
}

// UnmountTrigger detaches the autofs mount at where, if the topmost mount
// there is autofs.
func UnmountTrigger(where string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(where, &sfs); err != nil {
		return fmt.Errorf("autofs unmount %s: %w", where, err)
	}
	if sfs.Type != SuperMagic {
		return fmt.Errorf("autofs unmount %s: another file system (magic %#x) is mounted on it", where, sfs.Type)
	}
	if err := unix.Unmount(where, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("autofs unmount %s: %w", where, err)
	}
	return nil
}
