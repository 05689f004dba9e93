// Package notify is the observer's sd_notify source: the NOTIFY_SOCKET that
// services written against systemd's protocol report to (READY=1, STATUS=,
// WATCHDOG=1, FDSTORE=1 ...), and the notify-access rules that decide which
// unit a message may speak for.
//
// The socket is a unix datagram socket with SO_PASSCRED, so the kernel
// attaches the sender's real PID, UID and GID to every datagram; a message
// without credentials is rejected. Each accepted datagram becomes one event
// (source "notify", kind "message") whose Payload is a Message. The
// package does not know units: attributing the sender to a unit and
// acting on the message is the manager's job, with Allowed as the rule.
//
// Everything that arrives from outside is bounded: datagrams above MaxSize
// and those with NUL bytes are dropped and counted, fds beyond MaxFDs are
// closed, malformed lines are counted and skipped, and when the loop falls
// behind the source drops messages (closing their fds) instead of blocking
// the reader: a flooding client fills its own socket buffer, never the
// manager.
//
// BARRIER=1 with exactly one fd (sd_notify_barrier) is answered here, by a
// Hold whose release closes that fd: the client sees POLLHUP only once the
// loop has dispatched every message it sent before the barrier.
package notify

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// Options tune a Socket; the zero value is systemd's behaviour.
type Options struct {
	// MaxSize bounds a datagram's text; default 4096 (PIPE_BUF, as
	// systemd). Larger datagrams are rejected whole.
	MaxSize int
	// MaxFDs bounds the fds kept per message; more are closed at once.
	// Default 253, the kernel's own limit per datagram (SCM_MAX_FD).
	MaxFDs int
	// QueueLimit bounds the messages waiting for the loop; default 256.
	QueueLimit int
	// Mode is the socket file's mode for filesystem paths; default 0777:
	// any service may send, the credentials decide what counts.
	Mode fs.FileMode
	// Logf receives rejections (the first, second, fourth, eighth... of
	// each kind, so a flood cannot flood the log). Nil discards them.
	Logf func(format string, args ...any)
}

// scmMaxFD is the kernel's limit of fds in one SCM_RIGHTS message.
const scmMaxFD = 253

// Stats counts what the socket received and what it refused.
type Stats struct {
	Received      uint64 // datagrams read
	Posted        uint64 // messages handed to the loop
	Dropped       uint64 // messages lost because the loop's queue was full
	Oversized     uint64 // datagrams above MaxSize
	Garbage       uint64 // datagrams with NUL bytes or invalid UTF-8 keys only
	NoCredentials uint64 // datagrams without SCM_CREDENTIALS
	MalformedLine uint64 // lines that were not a usable KEY=VALUE
	TooManyFDs    uint64 // datagrams with more fds than MaxFDs (the rest were closed)
	Truncated     uint64 // datagrams whose control data the kernel truncated
	FDsClosed     uint64 // fds closed because they exceeded MaxFDs or came with a rejected or dropped datagram
	BadBarriers   uint64 // BARRIER=1 without exactly one fd
}

// Socket is a listening NOTIFY_SOCKET. Create it with Listen.
type Socket struct {
	addr   string
	path   string // filesystem path to remove on Close; "" for abstract names
	conn   *net.UnixConn
	source *observer.Source
	opts   Options
	done   chan struct{}
	once   sync.Once
	// reader runs read, again after a panic (observer.Keep).
	reader *observer.Keeper

	received, posted, dropped, oversized, garbage atomic.Uint64
	noCreds, malformed, fdsClosed, badBarriers    atomic.Uint64
	tooManyFDs, truncated                         atomic.Uint64
}

// Listen binds the notify socket at path, a filesystem path or an abstract
// "@name", and starts reading it into loop as source "notify". A stale
// socket file at path is replaced; any other file there is an error.
func Listen(loop *observer.Loop, path string, opts Options) (*Socket, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = 4096
	}
	if opts.MaxFDs <= 0 || opts.MaxFDs > scmMaxFD {
		opts.MaxFDs = scmMaxFD
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = 256
	}
	if opts.Mode == 0 {
		opts.Mode = 0o777
	}
	s := &Socket{addr: path, opts: opts, done: make(chan struct{})}
	switch {
	case strings.HasPrefix(path, "@") && len(path) > 1:
	case filepath.IsAbs(path):
		s.path = path
		if err := prepareSocketPath(path); err != nil {
			return nil, fmt.Errorf("notify socket %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("notify socket %q: expected an absolute path or @abstract name", path)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	if err := setPassCred(conn); err != nil {
		conn.Close()
		s.removeFile()
		return nil, fmt.Errorf("notify socket %s: SO_PASSCRED: %w", path, err)
	}
	if s.path != "" {
		if err := os.Chmod(s.path, opts.Mode); err != nil {
			conn.Close()
			s.removeFile()
			return nil, fmt.Errorf("notify socket %s: %w", path, err)
		}
	}
	s.conn = conn
	s.source = loop.NewSource("notify", opts.QueueLimit)
	s.reader = s.source.Keep("notify socket reader", observer.KeepOptions{Logf: s.opts.Logf}, s.read)
	go func() { <-s.reader.Done(); close(s.done) }()
	return s, nil
}

// prepareSocketPath makes the parent directory and removes a stale socket.
func prepareSocketPath(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket (%s)", path, st.Mode().Type())
	}
	return os.Remove(path)
}

func setPassCred(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// Addr is the value for NOTIFY_SOCKET.
func (s *Socket) Addr() string { return s.addr }

// Env is the NOTIFY_SOCKET=... assignment for a service's environment.
func (s *Socket) Env() string { return "NOTIFY_SOCKET=" + s.addr }

// Stats reads the counters.
func (s *Socket) Stats() Stats {
	return Stats{
		Received: s.received.Load(), Posted: s.posted.Load(), Dropped: s.dropped.Load(),
		Oversized: s.oversized.Load(), Garbage: s.garbage.Load(), NoCredentials: s.noCreds.Load(),
		MalformedLine: s.malformed.Load(), FDsClosed: s.fdsClosed.Load(), BadBarriers: s.badBarriers.Load(),
		TooManyFDs: s.tooManyFDs.Load(), Truncated: s.truncated.Load(),
	}
}

// Close stops reading, closes the socket and removes its file. Messages
// already handed to the loop are still dispatched.
func (s *Socket) Close() error {
	var err error
	s.once.Do(func() {
		s.reader.Stop()
		err = s.conn.Close()
		<-s.done
		s.removeFile()
	})
	return err
}

func (s *Socket) removeFile() {
	if s.path != "" {
		os.Remove(s.path)
	}
}

// note counts one rejection and logs it when the count is a power of two.
func (s *Socket) note(counter *atomic.Uint64, format string, args ...any) {
	n := counter.Add(1)
	if s.opts.Logf != nil && bits.OnesCount64(n) == 1 {
		s.opts.Logf("notify: "+format+" (%d so far)", append(args, n)...)
	}
}

// read is the socket's goroutine: one datagram at a time, never waiting
// for the loop.
// read receives until the socket is closed (nil); after a panic
// observer.Keep runs it again.
func (s *Socket) read() error {
	// One byte more than allowed tells an oversized datagram from a full one.
	buf := make([]byte, s.opts.MaxSize+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*scmMaxFD))
	for {
		n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if s.opts.Logf != nil {
				s.opts.Logf("notify: read: %v", err)
			}
			continue
		}
		s.received.Add(1)
		s.handle(buf[:n], oob[:oobn], flags)
	}
}

// handle turns one datagram into an event, or counts why not.
func (s *Socket) handle(text, oob []byte, flags int) {
	cred, fds, ctrunc := parseControl(oob)
	if flags&unix.MSG_CTRUNC != 0 || ctrunc {
		s.note(&s.truncated, "control data truncated: more fds than the kernel passes in one datagram")
	}
	reject := func(counter *atomic.Uint64, why string) {
		s.fdsClosed.Add(uint64(closeFDs(fds)))
		pid := 0
		if cred != nil {
			pid = int(cred.Pid)
		}
		s.note(counter, "rejected datagram from PID %d: %s", pid, why)
	}
	if flags&unix.MSG_TRUNC != 0 || len(text) > s.opts.MaxSize {
		reject(&s.oversized, fmt.Sprintf("larger than %d bytes", s.opts.MaxSize))
		return
	}
	if cred == nil || cred.Pid <= 0 {
		reject(&s.noCreds, "no sender credentials")
		return
	}
	if len(text) > 0 && text[len(text)-1] == 0 {
		text = text[:len(text)-1] // one trailing NUL is tolerated, as by systemd
	}
	if len(text) == 0 {
		reject(&s.garbage, "empty")
		return
	}
	for _, c := range text {
		if c == 0 {
			reject(&s.garbage, "embedded NUL byte")
			return
		}
	}
	msg := ParseMessage(text)
	if msg.Malformed > 0 {
		s.malformed.Add(uint64(msg.Malformed))
	}
	if msg.LastState == "" && len(msg.Unknown) == 0 && !msg.hasContent() {
		reject(&s.garbage, "no KEY=VALUE line")
		return
	}
	msg.PID, msg.UID, msg.GID = int(cred.Pid), int(cred.Uid), int(cred.Gid)
	if len(fds) > s.opts.MaxFDs {
		s.fdsClosed.Add(uint64(closeFDs(fds[s.opts.MaxFDs:])))
		s.note(&s.tooManyFDs, "PID %d sent %d fds, kept %d", msg.PID, len(fds), s.opts.MaxFDs)
		fds = fds[:s.opts.MaxFDs]
	}
	var hold *observer.Hold
	if msg.Barrier {
		if len(fds) == 1 {
			barrier := os.NewFile(uintptr(fds[0]), "barrier")
			fds = nil
			// Released by the loop once this event is dispatched: everything
			// the client sent before the barrier has been seen.
			hold = &observer.Hold{Release: func(observer.Verdict) { barrier.Close() }, Default: observer.Allow}
		} else {
			s.note(&s.badBarriers, "PID %d sent BARRIER=1 with %d fds, expected 1", msg.PID, len(fds))
		}
	}
	for _, fd := range fds {
		msg.FDs = append(msg.FDs, os.NewFile(uintptr(fd), "notify-fd"))
	}
	ev := observer.Event{Kind: "message", Attrs: msg.attrs(), Payload: &msg, Hold: hold}
	if s.source.Post(ev) {
		s.posted.Add(1)
		return
	}
	s.fdsClosed.Add(uint64(len(msg.FDs)))
	msg.Close()
	s.note(&s.dropped, "loop queue full, dropped message from PID %d", msg.PID)
}

// hasContent reports whether the message says anything at all.
func (m *Message) hasContent() bool {
	return m.Watchdog || m.WatchdogTrigger || m.FDStore || m.FDStoreRemove || m.FDNoPoll || m.Barrier ||
		m.Status != nil || m.MainPID != 0 || m.Errno != 0 || m.BusError != "" || m.NotifyAccess != "" ||
		m.WatchdogUSec != 0 || m.ExtendTimeoutUSec != 0 || m.MonotonicUSec != 0 || m.FDName != ""
}

// parseControl extracts the credentials and the fds (close-on-exec: Go's
// ReadMsgUnix asks for MSG_CMSG_CLOEXEC). ctrunc reports a control
// message the parser could not read whole.
func parseControl(oob []byte) (cred *unix.Ucred, fds []int, ctrunc bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, nil, true
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			if c, err := unix.ParseUnixCredentials(m); err == nil {
				cred = c
			}
		case unix.SCM_RIGHTS:
			if r, err := unix.ParseUnixRights(m); err == nil {
				fds = append(fds, r...)
			}
		}
	}
	return cred, fds, false
}

func closeFDs(fds []int) int {
	for _, fd := range fds {
		unix.Close(fd)
	}
	return len(fds)
}
