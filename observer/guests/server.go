package guests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/fanotify"
)

// Options configure a Server.
type Options struct {
	// Mode is the socket's permission bits; default 0600 (root only).
	Mode os.FileMode
	// Group may connect too (with Mode 0660): its members observe, but
	// only root may decide held events or run actions.
	Group string
	// MaxGuests bounds connected guests; default 256.
	MaxGuests int
	// WriteTimeout is how long a write to a guest may block before the
	// guest is dropped; default 10 s.
	WriteTimeout time.Duration
	// Logf receives the server's complaints; nil discards them.
	Logf func(format string, args ...any)
	// FileAccess marks paths for root guests' "watch" requests; nil when
	// fanotify is unavailable, FileAccessError then says why.
	FileAccess      FileAccess
	FileAccessError error
}

// FileAccess is the part of the fanotify source the server uses.
type FileAccess interface {
	Mark(path string, mask fanotify.Mask) (fanotify.MarkID, error)
	MarkTree(dir string, mask fanotify.Mask) (fanotify.MarkID, error)
	Unmark(id fanotify.MarkID)
}

// Server accepts guests.
type Server struct {
	loop   *observer.Loop
	ln     *net.UnixListener
	path   string
	opts   Options
	nextID atomic.Uint64
	count  atomic.Int64
	// Malformed counts messages that did not decode.
	Malformed atomic.Uint64
	wg        sync.WaitGroup
	closed    chan struct{}
	// acceptor keeps the accept loop running: a panic in it would leave
	// the socket open with nobody answering.
	acceptor *observer.Keeper
	// beforeAccept, when set, runs at each turn of the accept loop (tests
	// make it panic).
	beforeAccept atomic.Pointer[func()]
}

// Listen creates the socket and serves guests until Close.
func Listen(loop *observer.Loop, path string, opts Options) (*Server, error) {
	if opts.Mode == 0 {
		opts.Mode = 0o600
		if opts.Group != "" {
			opts.Mode = 0o660
		}
	}
	if opts.MaxGuests <= 0 {
		opts.MaxGuests = 256
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("observer socket %s: exists and is not a socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("observer socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, opts.Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("observer socket %s: %w", path, err)
	}
	if opts.Group != "" {
		gid, err := lookupGID(opts.Group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("observer socket group: %w", err)
		}
		os.Chown(path, 0, gid)
	}
	s := &Server{loop: loop, ln: ln, path: path, opts: opts, closed: make(chan struct{})}
	s.wg.Add(1)
	s.acceptor = observer.Keep("observer socket", observer.KeepOptions{Logf: s.opts.Logf}, s.accept)
	go func() { <-s.acceptor.Done(); s.wg.Done() }()
	return s, nil
}

func lookupGID(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil {
		return n, nil
	}
	data, err := os.ReadFile("/etc/group")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		f := bytes.Split(line, []byte(":"))
		if len(f) >= 3 && string(f[0]) == group {
			return strconv.Atoi(string(f[2]))
		}
	}
	return 0, fmt.Errorf("group %s not found", group)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// Path is where the socket is.
func (s *Server) Path() string { return s.path }

// Close stops accepting and drops every guest (their observers go away,
// their pending holds get their defaults).
func (s *Server) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	s.acceptor.Stop()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// AcceptorStats say how the accept loop stands (restarts, last failure).
func (s *Server) AcceptorStats() observer.KeeperStats { return s.acceptor.Stats() }

// accept serves the listening socket until Close; it returns nil then.
func (s *Server) accept() error {
	for {
		if hook := s.beforeAccept.Load(); hook != nil {
			(*hook)()
		}
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.closed:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if s.count.Load() >= int64(s.opts.MaxGuests) {
			c.Write([]byte(`{"op":"error","message":"too many guests"}` + "\n"))
			c.Close()
			continue
		}
		uid, err := peerUID(c)
		if err != nil {
			c.Close()
			continue
		}
		s.count.Add(1)
		s.wg.Add(1)
		g := &guest{srv: s, conn: c, root: uid == 0, observers: map[observer.ObserverID]*observer.Queue{},
			marks: map[observer.ObserverID][]fanotify.MarkID{}}
		go func() {
			defer s.wg.Done()
			defer s.count.Add(-1)
			observer.Guard("observer guest", s.opts.Logf, g.serve)
		}()
	}
}

func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return 0, cerr
	}
	return int(cred.Uid), nil
}

// guest is one connection.
type guest struct {
	srv  *Server
	conn *net.UnixConn
	root bool
	name string

	wmu sync.Mutex // serialises writes

	mu        sync.Mutex
	observers map[observer.ObserverID]*observer.Queue
	// marks are the fanotify marks of watching observers.
	marks map[observer.ObserverID][]fanotify.MarkID
	ctx   context.Context
}

func (g *guest) send(m Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.conn.SetWriteDeadline(time.Now().Add(g.srv.opts.WriteTimeout))
	_, err = g.conn.Write(data)
	if err != nil {
		// A guest that does not read for that long is gone for us.
		g.conn.Close()
	}
	return err
}

func (g *guest) fail(id uint64, format string, args ...any) {
	g.send(Message{Op: "error", ID: id, Message: fmt.Sprintf(format, args...)})
}

func (g *guest) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	g.ctx = ctx
	defer func() {
		cancel()
		g.conn.Close()
		g.dropAll()
	}()
	go func() {
		select {
		case <-g.srv.closed:
			g.conn.Close()
		case <-ctx.Done():
		}
	}()
	r := bufio.NewReaderSize(g.conn, 4096)
	for {
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, errTooLong) {
				g.srv.Malformed.Add(1)
				g.fail(0, "message exceeds %d bytes", MaxLine)
				return
			}
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, err := Decode(line)
		if err != nil {
			g.srv.Malformed.Add(1)
			g.fail(m.ID, "%v", err)
			continue
		}
		if g.name == "" && m.Op != "hello" {
			g.fail(m.ID, "say hello first")
			continue
		}
		g.handle(m)
	}
}

var errTooLong = errors.New("line too long")

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine+1 {
			return nil, errTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

func (g *guest) handle(m Message) {
	loop := g.srv.loop
	switch m.Op {
	case "hello":
		name := m.Name
		if name == "" {
			name = "guest"
		}
		g.name = fmt.Sprintf("%s#%d", name, g.srv.nextID.Add(1))
		g.send(Message{Op: "welcome", Version: m.Version, Guest: g.name})
	case "observe":
		g.observe(m)
	case "unobserve":
		id := observer.ObserverID(m.Observer)
		g.mu.Lock()
		q, ok := g.observers[id]
		delete(g.observers, id)
		marks := g.marks[id]
		delete(g.marks, id)
		g.mu.Unlock()
		if !ok {
			g.fail(m.ID, "observer %d is not yours", m.Observer)
			return
		}
		q.Close()
		loop.Do(func() { loop.Unregister(id) })
		g.unmark(marks)
		g.send(Message{Op: "ok", ID: m.ID, Observer: m.Observer})
	case "answer":
		id := observer.ObserverID(m.Observer)
		g.mu.Lock()
		_, ok := g.observers[id]
		g.mu.Unlock()
		if !ok {
			g.fail(m.ID, "observer %d is not yours", m.Observer)
			return
		}
		v, _ := observer.ParseVerdict(m.Verdict)
		var err error
		if cerr := g.call(func() { err = loop.Answer(m.Hold, id, v) }); cerr != nil {
			err = cerr
		}
		if err != nil {
			g.fail(m.ID, "%v", err)
			return
		}
		g.send(Message{Op: "ok", ID: m.ID})
	case "emit":
		attrs := map[string]string{}
		for k, v := range m.Attrs {
			attrs[k] = v
		}
		attrs["guest"] = g.name
		if !loop.Emit(observer.Event{Source: "guest", Kind: m.Kind, Attrs: attrs}) {
			g.fail(m.ID, "event queue full")
			return
		}
		g.send(Message{Op: "ok", ID: m.ID})
	}
}

// call runs fn on the loop, bounded in time so a busy loop costs the guest
// an error, not a hung connection.
func (g *guest) call(fn func()) error {
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	return g.srv.loop.Call(ctx, fn)
}

func (g *guest) observe(m Message) {
	if !g.root && (m.Decides || len(m.Actions) > 0) {
		g.fail(m.ID, "only root may decide held events or run actions")
		return
	}
	f, err := observer.ParseFilter(m.Filter)
	if err != nil {
		g.fail(m.ID, "%v", err)
		return
	}
	var marks []fanotify.MarkID
	if m.Watch != nil {
		if marks, err = g.watch(m.Watch, &f); err != nil {
			g.fail(m.ID, "%v", err)
			return
		}
	}
	def, _ := observer.ParseVerdict(m.HoldDefault)
	q := observer.NewQueue(m.Queue)
	o := observer.Observer{
		Guest: g.name, Name: "socket", Filter: f, Actions: m.Actions, Queue: q,
		Decides: m.Decides, HoldTimeout: time.Duration(m.HoldTimeoutMS) * time.Millisecond, HoldDefault: def,
	}
	var id observer.ObserverID
	var rerr error
	if err := g.call(func() { id, rerr = g.srv.loop.Register(o) }); err != nil {
		rerr = err
	}
	if rerr != nil {
		g.unmark(marks)
		g.fail(m.ID, "%v", rerr)
		return
	}
	g.mu.Lock()
	g.observers[id] = q
	if len(marks) > 0 {
		g.marks[id] = marks
	}
	g.mu.Unlock()
	g.send(Message{Op: "ok", ID: m.ID, Observer: uint64(id)})
	go func() {
		for {
			ev := q.Next(g.ctx)
			if ev == nil {
				return
			}
			if err := g.send(Message{Op: "event", Observer: uint64(id), Event: wireEvent(ev), Dropped: q.Dropped()}); err != nil {
				return
			}
		}
	}()
}

// dropAll unregisters the guest's observers: pending holds get their
// defaults at once instead of waiting for a guest that is gone.
func (g *guest) dropAll() {
	g.mu.Lock()
	ids := make([]observer.ObserverID, 0, len(g.observers))
	for id, q := range g.observers {
		q.Close()
		ids = append(ids, id)
	}
	g.observers = map[observer.ObserverID]*observer.Queue{}
	var marks []fanotify.MarkID
	for _, ms := range g.marks {
		marks = append(marks, ms...)
	}
	g.marks = map[observer.ObserverID][]fanotify.MarkID{}
	g.mu.Unlock()
	// Unregistering first releases pending holds with the guest's default;
	// the marks go after, and any access in between is simply not held.
	defer g.unmark(marks)
	if len(ids) == 0 {
		return
	}
	loop := g.srv.loop
	loop.Do(func() {
		for _, id := range ids {
			loop.Unregister(id)
		}
	})
}

// watch marks a watch's paths and narrows the filter to their events. Only
// root may: a hold stops other users' processes.
func (g *guest) watch(w *Watch, f *observer.Filter) ([]fanotify.MarkID, error) {
	if !g.root {
		return nil, fmt.Errorf("only root may watch paths (fanotify holds stop other processes)")
	}
	fa := g.srv.opts.FileAccess
	if fa == nil {
		reason := g.srv.opts.FileAccessError
		if reason == nil {
			reason = fanotify.ErrUnavailable
		}
		return nil, fmt.Errorf("watch: file access holds are unavailable on this system: %v", reason)
	}
	mask, err := w.check()
	if err != nil {
		return nil, err
	}
	var marks []fanotify.MarkID
	paths := make([]string, 0, len(w.Paths))
	for _, p := range w.Paths {
		p = filepath.Clean(p)
		var id fanotify.MarkID
		if w.Tree {
			id, err = fa.MarkTree(p, mask)
		} else {
			id, err = fa.Mark(p, mask)
		}
		if err != nil {
			g.unmark(marks)
			return nil, fmt.Errorf("watch %s: %w", p, err)
		}
		marks = append(marks, id)
		paths = append(paths, p)
	}
	f.Terms = append(f.Terms,
		observer.Term{Key: "source", Op: observer.OpEq, Values: []string{"fanotify"}},
		observer.Term{Key: "kind", Op: observer.OpEq, Values: w.kinds()},
		observer.Term{Key: "mark", Op: observer.OpEq, Values: paths})
	// Holds stop other processes: worth a line in the log.
	g.srv.logf("observer socket: guest %s holds %s on %v", g.name, mask, paths)
	return marks, nil
}

func (g *guest) unmark(marks []fanotify.MarkID) {
	for _, id := range marks {
		g.srv.opts.FileAccess.Unmark(id)
	}
}
