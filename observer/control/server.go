package control

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

const (
	defaultQueueLimit    = 256
	defaultProgressLimit = 256
	defaultMaxConns      = 1024
	defaultLinger        = 10 * time.Second
	// maxQueuedFinals bounds the error frames the reader queues for a
	// client that writes calls but does not read the answers: past it the
	// reader waits for the writer, so such a client stalls only itself.
	maxQueuedFinals = 16
)

// Options configure a Server. The zero value is a root-only socket.
type Options struct {
	// SourceName names the observer source; default "control".
	SourceName string
	// Mode is the socket file's permission bits; default 0600, or 0660
	// when Group is set.
	Mode os.FileMode
	// Group, a group name or numeric id, owns the socket file, so that its
	// members may connect (they are still limited to ReadOnlyMethods).
	Group string
	// ReadOnlyMethods may be called by peers that are not root.
	ReadOnlyMethods []string
	// QueueLimit bounds calls waiting for the loop; past it a call is
	// answered "manager busy". Default 256.
	QueueLimit int
	// ProgressLimit bounds the progress frames queued per connection;
	// past it they are dropped and counted. Default 256.
	ProgressLimit int
	// MaxFrame bounds one call; default DefaultMaxFrame (1 MiB).
	MaxFrame int
	// MaxConnections bounds open connections; default 1024.
	MaxConnections int
	// Linger is how long, after a client half-closes its side, the server
	// still waits to deliver the answer to its last call. Default 10s.
	Linger time.Duration
	// Logf receives the server's complaints; nil discards them.
	Logf func(format string, args ...any)
}

// Stats counts what the server has seen since Listen.
type Stats struct {
	Accepted        uint64 `json:"accepted"`
	Calls           uint64 `json:"calls"`
	Refused         uint64 `json:"refused"`   // access denied
	Malformed       uint64 `json:"malformed"` // bad frames, too large, pipelined
	Busy            uint64 `json:"busy"`      // answered "manager busy"
	ProgressDropped uint64 `json:"progress_dropped"`
	Open            int    `json:"open"`
}

// Server accepts control connections and turns calls into events.
type Server struct {
	loop     *observer.Loop
	source   *observer.Source
	path     string
	opts     Options
	readOnly map[string]bool
	ln       *net.UnixListener
	sockIno  uint64

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup

	// acceptor runs acceptLoop (observer.Keep).
	acceptor *observer.Keeper

	accepted, calls, refused, malformed, busy, progressDropped atomic.Uint64
}

// Listen creates the socket at path (replacing a stale one, refusing to
// replace one a live server answers on) and starts accepting.
func Listen(loop *observer.Loop, path string, opts Options) (*Server, error) {
	if opts.SourceName == "" {
		opts.SourceName = "control"
	}
	if opts.Mode == 0 {
		opts.Mode = 0o600
		if opts.Group != "" {
			opts.Mode = 0o660
		}
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = defaultQueueLimit
	}
	if opts.ProgressLimit <= 0 {
		opts.ProgressLimit = defaultProgressLimit
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = DefaultMaxFrame
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = defaultMaxConns
	}
	if opts.Linger <= 0 {
		opts.Linger = defaultLinger
	}
	gid := -1
	if opts.Group != "" {
		g, err := lookupGroup(opts.Group)
		if err != nil {
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
		gid = g
	}
	ln, err := bindSocket(path, opts.Mode, gid)
	if err != nil {
		return nil, err
	}
	s := &Server{
		loop:     loop,
		path:     path,
		opts:     opts,
		readOnly: map[string]bool{},
		ln:       ln,
		conns:    map[*conn]struct{}{},
	}
	if st, err := os.Stat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			s.sockIno = sys.Ino
		}
	}
	for _, m := range opts.ReadOnlyMethods {
		s.readOnly[m] = true
	}
	s.source = loop.NewSource(opts.SourceName, opts.QueueLimit)
	s.wg.Add(1)
	// The accept loop is run again after a panic (observer.Keep): without
	// it nobody could reach the manager any more.
	s.acceptor = s.source.Keep("control socket", observer.KeepOptions{Logf: s.opts.Logf}, s.acceptLoop)
	go func() { <-s.acceptor.Done(); s.wg.Done() }()
	return s, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("group %q: %w", name, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("group %q: gid %q is not a number", name, g.Gid)
	}
	return n, nil
}

// bindSocket binds under a temporary name, sets mode and group, and renames
// into place, so the socket is never reachable with looser permissions.
func bindSocket(path string, mode os.FileMode, gid int) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: a running server answers there", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	bindPath := filepath.Join(dir, fmt.Sprintf(".control-%d", os.Getpid()))
	if len(bindPath) >= len(unix.RawSockaddrUnix{}.Path) {
		bindPath = path // no room for a temporary name: bind in place
	}
	_ = os.Remove(bindPath)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, error) {
		ln.Close()
		os.Remove(bindPath)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(bindPath, mode); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(bindPath, -1, gid); err != nil {
			return fail(err)
		}
	}
	if bindPath != path {
		if err := os.Rename(bindPath, path); err != nil {
			return fail(err)
		}
	}
	return ln, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Source is the observer source the server posts calls to.
func (s *Server) Source() *observer.Source { return s.source }

// Stats reports the server's counters. Safe from any goroutine.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	return Stats{
		Accepted:        s.accepted.Load(),
		Calls:           s.calls.Load(),
		Refused:         s.refused.Load(),
		Malformed:       s.malformed.Load(),
		Busy:            s.busy.Load(),
		ProgressDropped: s.progressDropped.Load(),
		Open:            open,
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// Close stops accepting, drops every connection (their Done channels close)
// and removes the socket file if it is still the one Listen made.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.acceptor.Stop()
	err := s.ln.Close()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	if st, statErr := os.Stat(s.path); statErr == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Ino == s.sockIno {
			os.Remove(s.path)
		}
	}
	if err != nil {
		return fmt.Errorf("close control socket %s: %w", s.path, err)
	}
	return nil
}

// acceptLoop accepts until Close (nil).
func (s *Server) acceptLoop() error {
	for {
		nc, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: back off instead of spinning.
			s.logf("control: accept on %s: %v", s.path, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.accepted.Add(1)
		s.serve(nc)
	}
}

func peerCred(nc *net.UnixConn) (Cred, error) {
	raw, err := nc.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var ucred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		ucred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, err
	}
	if credErr != nil {
		return Cred{}, credErr
	}
	return Cred{PID: int(ucred.Pid), UID: int(ucred.Uid), GID: int(ucred.Gid)}, nil
}

// conn is one client connection: a reader goroutine that frames calls and
// a writer goroutine that drains the outbound queue.
type conn struct {
	server   *Server
	nc       *net.UnixConn
	cred     Cred
	out      *outbound
	done     chan struct{} // the client is gone (or stopped sending)
	doneOnce sync.Once
	shut     sync.Once
}

func (s *Server) serve(nc *net.UnixConn) {
	cred, err := peerCred(nc)
	if err != nil {
		s.logf("control: cannot read peer credentials: %v", err)
		nc.Close()
		return
	}
	s.mu.Lock()
	if s.closed || len(s.conns) >= s.opts.MaxConnections {
		s.mu.Unlock()
		s.busy.Add(1)
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write(encodeFrame(Frame{Error: &Error{Code: CodeBusy, Message: "manager busy: too many control connections"}}))
		nc.Close()
		return
	}
	c := &conn{server: s, nc: nc, cred: cred, out: newOutbound(s.opts.ProgressLimit), done: make(chan struct{})}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go observer.Guard("control client reader", s.opts.Logf, c.readLoop)
	go observer.Guard("control client writer", s.opts.Logf, c.writeLoop)
}

func (c *conn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// close ends the connection for good; queued frames are discarded.
func (c *conn) close() {
	c.shut.Do(func() {
		c.markDone()
		c.out.close()
		c.nc.Close()
		s := c.server
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	})
}

func (c *conn) fail(id uint64, code int, format string, args ...any) {
	c.out.addFinal(encodeFrame(Frame{ID: id, Error: &Error{Code: code, Message: fmt.Sprintf(format, args...)}}))
}

func (c *conn) readLoop() {
	s := c.server
	defer s.wg.Done()
	r := NewFrameReader(c.nc, s.opts.MaxFrame)
	for {
		if !c.out.waitFinalsBelow(maxQueuedFinals) {
			return
		}
		line, err := r.Next()
		if errors.Is(err, ErrFrameTooLarge) {
			s.malformed.Add(1)
			c.fail(0, CodeProtocol, "call larger than %d bytes; closing the connection", s.opts.MaxFrame)
			c.lingerThenClose()
			return
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
				c.close()
				return
			}
			if errors.Is(err, io.EOF) {
				// The client will send no more; it may still read the
				// answer to its last call (a half-close, as socat does).
				c.markDone()
				c.lingerThenClose()
				return
			}
			c.close()
			return
		}
		call, err := DecodeCall(line)
		if err != nil {
			s.malformed.Add(1)
			c.fail(call.ID, CodeProtocol, "%v", err)
			continue
		}
		if c.cred.UID != 0 && !s.readOnly[call.Method] {
			s.refused.Add(1)
			c.fail(call.ID, CodeAccess, "access denied: %s needs root (peer uid %d)", call.Method, c.cred.UID)
			continue
		}
		if !c.out.begin(call.ID) {
			s.malformed.Add(1)
			c.fail(call.ID, CodeProtocol, "call %d arrived while call %d is still being answered; send a call only after the previous one's final frame", call.ID, c.out.inFlightID())
			continue
		}
		s.calls.Add(1)
		req := &Request{ID: call.ID, Method: call.Method, Args: call.Args, Peer: c.cred, conn: c}
		ev := observer.Event{
			Source: s.opts.SourceName,
			Kind:   call.Method,
			Attrs: map[string]string{
				"method": call.Method,
				"uid":    strconv.Itoa(c.cred.UID),
				"pid":    strconv.Itoa(c.cred.PID),
			},
			Payload: req,
		}
		if !s.source.Post(ev) {
			s.busy.Add(1)
			req.Fail(CodeBusy, "manager busy: %d control calls are waiting; try again", s.opts.QueueLimit)
		}
	}
}

// lingerThenClose waits, up to the linger time, for the call in flight to
// be answered and every final frame to be written, then closes.
func (c *conn) lingerThenClose() {
	deadline := time.AfterFunc(c.server.opts.Linger, c.close)
	defer deadline.Stop()
	c.out.waitIdle()
	c.close()
}

func (c *conn) writeLoop() {
	defer c.server.wg.Done()
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for range c.out.wake {
		frames, closed := c.out.take()
		if closed {
			return
		}
		progress, finals := 0, 0
		for _, f := range frames {
			if f.final {
				finals++
			} else {
				progress++
			}
			if _, err := w.Write(f.data); err != nil {
				c.close()
				return
			}
		}
		if err := w.Flush(); err != nil {
			c.close()
			return
		}
		c.out.written(progress, finals)
	}
}
