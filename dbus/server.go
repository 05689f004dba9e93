package dbus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Options configure a Server.
type Options struct {
	// Logf receives the server's own log lines; nil discards them.
	Logf func(format string, args ...any)
	// QueueLength bounds each connection's outgoing queue (default 1024).
	// Signals that do not fit are dropped for that connection and counted.
	QueueLength int
	// MaxConnections bounds concurrent peer-to-peer clients (default 256).
	MaxConnections int
	// AuthTimeout bounds the SASL handshake (default 10 s).
	AuthTimeout time.Duration
	// WriteTimeout disconnects a client that reads nothing for this long
	// while we have something to send (default 30 s).
	WriteTimeout time.Duration
	// MachineIDFile is read by Peer.GetMachineId (default /etc/machine-id).
	MachineIDFile string
}

// Stats are the server's counters.
type Stats struct {
	Connections int
	// DroppedSignals were lost because a client's queue was full.
	DroppedSignals uint64
	// DroppedEvents were lost before fan-out because the server's own
	// event queue was full.
	DroppedEvents uint64
	// Rejected connections: over the limit or failed handshakes.
	Rejected uint64
}

// Server serves org.freedesktop.systemd1 on any number of connections.
type Server struct {
	m    Manager
	opts Options
	t    *tables
	guid string

	events        chan Event
	droppedEvents atomic.Uint64
	rejected      atomic.Uint64
	droppedClosed atomic.Uint64 // signal drops of connections already gone
	nextUnique    atomic.Uint64
	stopWatch     func()

	// refs are the units clients hold (AddRef), by connection and, on the
	// bus, by sender (refs.go).
	refMu sync.Mutex
	refs  map[refHolder]map[string]int

	// controllers are the scope controllers watched on the bus, by
	// connection (controller.go).
	ctlMu       sync.Mutex
	controllers map[*peerConn]map[string]bool

	mu        sync.Mutex
	conns     map[*peerConn]struct{}
	listeners []net.Listener
	closed    bool

	done chan struct{}
	wg   sync.WaitGroup
}

// NewServer starts a server over m: it subscribes to m's changes at once,
// so that no signal is missed between listening and the first client.
func NewServer(m Manager, opts Options) (*Server, error) {
	if opts.QueueLength <= 0 {
		opts.QueueLength = 1024
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 256
	}
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = 10 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.MachineIDFile == "" {
		opts.MachineIDFile = "/etc/machine-id"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s := &Server{m: m, opts: opts, t: buildTables(), guid: NewGUID(), events: make(chan Event, 4096),
		conns: map[*peerConn]struct{}{}, done: make(chan struct{})}
	stop, err := m.Watch(s.post)
	if err != nil {
		return nil, fmt.Errorf("dbus: watch manager: %w", err)
	}
	s.stopWatch = stop
	s.wg.Add(1)
	go s.broadcastLoop()
	return s, nil
}

// post queues an event for the signals without ever waiting: it is called
// on the manager's loop.
func (s *Server) post(ev Event) {
	select {
	case s.events <- ev:
	default:
		s.droppedEvents.Add(1)
	}
}

// Stats reports the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Connections: len(s.conns), DroppedEvents: s.droppedEvents.Load(),
		DroppedSignals: s.droppedClosed.Load(), Rejected: s.rejected.Load()}
	for p := range s.conns {
		st.DroppedSignals += p.dropped.Load()
	}
	return st
}

// Close stops listening, disconnects every client and stops watching the
// manager.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, l := range s.listeners {
		l.Close()
	}
	for p := range s.conns {
		p.Close()
	}
	s.mu.Unlock()
	s.stopWatch()
	close(s.done)
	s.wg.Wait()
	return nil
}

// ListenPrivate serves peer-to-peer clients on a unix socket at path
// (/run/systemd/private for PID 1), mode 0600 as systemd makes it. A stale
// socket file is replaced.
func (s *Server) ListenPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("listen %s: %w", path, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return fmt.Errorf("listen %s: server closed", path)
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				if s.isClosed() {
					return
				}
				s.opts.Logf("dbus: accept on %s: %v", path, err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.ServeConn(c)
			}()
		}
	}()
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// peerUID reads the kernel's record of who is on the other end.
func peerUID(c *net.UnixConn) (uint32, error) {
	cred, err := peerCred(c)
	if err != nil {
		return 0, err
	}
	return cred.Uid, nil
}

// peerCred reads the kernel's record of the process on the other end, as
// it was when that process connected.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if credErr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return cred, nil
}

// ServeConn serves one accepted peer-to-peer connection until it closes.
func (s *Server) ServeConn(c *net.UnixConn) {
	defer c.Close()
	s.mu.Lock()
	full := len(s.conns) >= s.opts.MaxConnections
	s.mu.Unlock()
	if full {
		s.rejected.Add(1)
		return
	}
	uid, err := peerUID(c)
	if err != nil {
		s.rejected.Add(1)
		s.opts.Logf("dbus: peer credentials: %v", err)
		return
	}
	c.SetDeadline(time.Now().Add(s.opts.AuthTimeout))
	// The handshake reads through the reader the messages are read from:
	// what a client sends after BEGIN stays in its buffer, and the
	// handshake's lines cost no system call per byte.
	r := bufio.NewReaderSize(&fdDroppingReader{c: c, oob: make([]byte, unix.CmsgSpace(253*4))}, 64<<10)
	if _, err := ServerHandshake(r, c, uid, s.guid, true); err != nil {
		s.rejected.Add(1)
		return
	}
	c.SetDeadline(time.Time{})
	p := newPeerConn(c, s.opts.QueueLength, false)
	p.uid = uid
	s.serve(p, r, 1)
}

// serve runs a connection: the writer, the handlers, and the reader in this
// goroutine. workers bounds concurrent calls; with 1 (peer-to-peer) replies
// keep the order of the calls.
func (s *Server) serve(p *peerConn, r *bufio.Reader, workers int) {
	if !s.add(p) {
		p.Close()
		return
	}
	var wg sync.WaitGroup
	calls := make(chan []byte, 16)
	// When the reader ends: close the connection (which ends the writer),
	// let the workers finish, then forget the connection.
	defer func() {
		p.Close()
		close(calls)
		wg.Wait()
		s.releaseRefs(p, "")
		s.remove(p)
	}()
	wg.Add(1)
	go func() { defer wg.Done(); p.writeLoop(s.opts.WriteTimeout) }()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for frame := range calls {
				s.handleFrame(p, frame)
			}
		}()
	}
	for {
		frame, err := readFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.opts.Logf("dbus: %v", err)
			}
			return
		}
		if _, typ := frameSerial(frame); typ == dbus.TypeMethodReply || typ == dbus.TypeError {
			if msg, err := decodeFrame(frame); err == nil {
				p.deliverReply(msg)
			}
			continue
		} else if typ == dbus.TypeSignal && p.onBus {
			s.busSignal(p, frame) // the bus tells of clients that left
			continue
		} else if typ != dbus.TypeMethodCall {
			continue // signals from clients mean nothing to us
		}
		select {
		case calls <- frame:
		case <-p.closed:
			return
		}
	}
}

func (s *Server) add(p *peerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[p] = struct{}{}
	return true
}

func (s *Server) remove(p *peerConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, p)
	s.droppedClosed.Add(p.dropped.Load())
}

// handleFrame answers one method call.
func (s *Server) handleFrame(p *peerConn, frame []byte) {
	msg, err := decodeFrame(frame)
	if err != nil {
		// Answer what we can: the serial is in the fixed header. On the
		// bus the sender is not known, so the error could not be routed.
		if serial, _ := frameSerial(frame); serial != 0 && !p.onBus && frame[2]&byte(dbus.FlagNoReplyExpected) == 0 {
			s.sendMessage(p, errorToSerial(serial, "", false, ErrNameInvalidArgs, "Malformed message: "+err.Error()))
		}
		return
	}
	reply, err := s.dispatch(p, msg)
	if msg.Flags&dbus.FlagNoReplyExpected != 0 {
		return
	}
	if err != nil {
		var de *Error
		if errors.As(err, &de) {
			s.sendMessage(p, errorTo(msg, p.onBus, de.Name, de.Message))
		} else {
			s.sendMessage(p, errorTo(msg, p.onBus, ErrNameFailed, err.Error()))
		}
		return
	}
	s.sendMessage(p, replyTo(msg, p.onBus, reply...))
}

func (s *Server) sendMessage(p *peerConn, msg *dbus.Message) {
	frame, err := encodeWire(msg)
	if err != nil {
		s.opts.Logf("dbus: %v", err)
		// msg is our reply (a name that is not UTF-8 echoed back, say):
		// the error must answer the call msg answers, or the client
		// waits for a reply that never comes.
		serial, _ := msg.Headers[dbus.FieldReplySerial].Value().(uint32)
		if serial == 0 {
			return
		}
		caller, _ := msg.Headers[dbus.FieldDestination].Value().(string)
		frame, err = encodeWire(errorToSerial(serial, caller, p.onBus, ErrNameFailed, "internal error: "+err.Error()))
		if err != nil {
			return
		}
	}
	p.send(frame)
}

// dispatch serves one call and returns the reply body.
func (s *Server) dispatch(p *peerConn, msg *dbus.Message) ([]any, error) {
	path, _ := msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	ifcName, _ := msg.Headers[dbus.FieldInterface].Value().(string)
	member, _ := msg.Headers[dbus.FieldMember].Value().(string)
	var sig string
	if v, ok := msg.Headers[dbus.FieldSignature]; ok {
		if g, ok := v.Value().(dbus.Signature); ok {
			sig = g.String()
		}
	}
	c := &call{s: s, p: p, msg: msg, member: member, args: msg.Body}
	if !p.onBus && (ifcName == ifaceDBus || ifcName == "" && path == "/org/freedesktop/DBus") {
		return s.busEmulation(c, sig)
	}
	switch ifcName {
	case ifacePeer, "":
		switch member {
		case "Ping":
			if sig != "" {
				return nil, invalidArgs(member, sig, "")
			}
			return nil, nil
		case "GetMachineId":
			if sig != "" {
				return nil, invalidArgs(member, sig, "")
			}
			id, err := os.ReadFile(s.opts.MachineIDFile)
			if err != nil {
				return nil, Errorf(ErrNameFailed, "No machine ID: %v", err)
			}
			return []any{strings.TrimSpace(string(id))}, nil
		}
	}
	if path == selfUnitPath {
		self, err := s.callerUnitPath(c)
		if err != nil {
			return nil, err
		}
		path = self
	}
	if member == "Get" && sig == "ss" && (ifcName == ifaceProperties || ifcName == "") {
		o, ok, err := s.resolveBrief(path, c.str(0), c.str(1))
		if err != nil {
			return nil, err
		}
		if ok {
			return s.getProperty(o, c.str(0), c.str(1))
		}
	}
	o, err := s.resolve(path)
	if err != nil {
		return nil, err
	}
	switch ifcName {
	case ifaceIntrospect, "":
		if member == "Introspect" {
			if sig != "" {
				return nil, invalidArgs(member, sig, "")
			}
			return []any{s.introspect(o)}, nil
		}
	}
	switch ifcName {
	case ifaceProperties, "":
		switch member {
		case "Get":
			if sig != "ss" {
				return nil, invalidArgs(member, sig, "ss")
			}
			if err := s.readProperties(o); err != nil {
				return nil, err
			}
			return s.getProperty(o, c.str(0), c.str(1))
		case "GetAll":
			if sig != "s" {
				return nil, invalidArgs(member, sig, "s")
			}
			if err := s.readProperties(o); err != nil {
				return nil, err
			}
			return s.getAll(o, c.str(0))
		case "Set":
			if sig != "ssv" {
				return nil, invalidArgs(member, sig, "ssv")
			}
			if err := s.checkWrite(c, "Set"); err != nil {
				return nil, err
			}
			return nil, Errorf(ErrNamePropertyReadOnly, "Property '%s' is not writable.", c.str(1))
		}
	}
	var m *method
	for _, ifc := range o.ifcs {
		if ifcName != "" && ifc.name != ifcName {
			continue
		}
		if m = ifc.method(member); m != nil {
			break
		}
	}
	if m == nil || m.fn == nil {
		if ifcName != "" && !s.hasIface(o, ifcName) {
			return nil, Errorf(ErrNameUnknownInterface, "Unknown interface %s or property.", ifcName)
		}
		return nil, Errorf(ErrNameUnknownMethod, "Unknown method %s or interface %s.", member, ifcName)
	}
	if sig != m.in {
		return nil, invalidArgs(member, sig, m.in)
	}
	if m.write {
		if err := s.checkWrite(c, member); err != nil {
			return nil, err
		}
	}
	return m.fn(c, o)
}

func (s *Server) hasIface(o *object, name string) bool {
	for _, ifc := range s.t.standard {
		if ifc.name == name {
			return true
		}
	}
	for _, ifc := range o.ifcs {
		if ifc.name == name {
			return true
		}
	}
	return false
}

func invalidArgs(member, have, want string) error {
	return Errorf(ErrNameInvalidArgs, "Invalid arguments '%s' to call %s(), expecting '%s'.", have, member, want)
}

// checkWrite lets only root change state.
func (s *Server) checkWrite(c *call, member string) error {
	uid, err := s.callerUID(c)
	if err != nil {
		return Errorf(ErrNameAccessDenied, "Access denied: cannot identify the caller of %s: %v", member, err)
	}
	if uid != 0 {
		return Errorf(ErrNameAccessDenied, "Access denied: only root may call %s (caller uid %d).", member, uid)
	}
	return nil
}

func (s *Server) getProperty(o *object, ifcName, name string) ([]any, error) {
	for _, ifc := range o.ifcs {
		if ifcName != "" && ifc.name != ifcName {
			continue
		}
		if p := ifc.byName[name]; p != nil {
			return []any{dbus.MakeVariant(p.get(o))}, nil
		}
	}
	if ifcName != "" && !s.hasIface(o, ifcName) {
		return nil, Errorf(ErrNameUnknownInterface, "Unknown interface %s.", ifcName)
	}
	return nil, Errorf(ErrNameUnknownProperty, "Unknown property %s.%s.", ifcName, name)
}

// getAll answers GetAll; an empty interface merges all of the object's
// interfaces, type-specific first, as systemd does.
func (s *Server) getAll(o *object, ifcName string) ([]any, error) {
	out := []propEntry{}
	found := ifcName == ""
	for _, ifc := range o.ifcs {
		if ifcName != "" && ifc.name != ifcName {
			continue
		}
		found = true
		for i := range ifc.props {
			out = append(out, propEntry{ifc.props[i].name, dbus.MakeVariant(ifc.props[i].get(o))})
		}
	}
	if !found && !s.hasIface(o, ifcName) {
		return nil, Errorf(ErrNameUnknownInterface, "Unknown interface %s.", ifcName)
	}
	return []any{out}, nil
}

// reload runs daemon-reload between the Reloading signals.
func (s *Server) reload() error {
	s.post(Event{Kind: EventReloading, Active: true})
	err := s.m.Reload()
	s.post(Event{Kind: EventReloading, Active: false})
	return err
}

// busEmulation answers org.freedesktop.DBus on a peer-to-peer connection,
// so that busctl and gdbus, which always say Hello, work there too.
func (s *Server) busEmulation(c *call, sig string) ([]any, error) {
	want := map[string]string{"Hello": "", "AddMatch": "s", "RemoveMatch": "s", "ListNames": "",
		"ListActivatableNames": "", "GetNameOwner": "s", "NameHasOwner": "s", "GetConnectionUnixUser": "s",
		"GetConnectionUnixProcessID": "s", "GetConnectionCredentials": "s", "GetId": ""}
	in, ok := want[c.member]
	if !ok {
		return nil, Errorf(ErrNameUnknownMethod, "Unknown method %s on the peer-to-peer bus emulation.", c.member)
	}
	if sig != in {
		return nil, invalidArgs(c.member, sig, in)
	}
	names := []string{ifaceDBus, busName}
	switch c.member {
	case "Hello":
		if c.p.name == "" {
			c.p.name = fmt.Sprintf(":1.%d", s.nextUnique.Add(1))
		}
		return []any{c.p.name}, nil
	case "AddMatch", "RemoveMatch":
		return nil, nil
	case "ListNames":
		if c.p.name != "" {
			names = append(names, c.p.name)
		}
		return []any{names}, nil
	case "ListActivatableNames":
		return []any{[]string{ifaceDBus}}, nil
	case "GetNameOwner":
		n := c.str(0)
		if n == busName || n == ifaceDBus || n == c.p.name && n != "" {
			return []any{n}, nil
		}
		return nil, Errorf("org.freedesktop.DBus.Error.NameHasNoOwner", "Could not get owner of name '%s': no such name", n)
	case "NameHasOwner":
		n := c.str(0)
		return []any{n == busName || n == ifaceDBus || n == c.p.name && n != ""}, nil
	case "GetConnectionUnixUser":
		return []any{c.p.uid}, nil
	case "GetConnectionUnixProcessID":
		return []any{uint32(os.Getpid())}, nil
	case "GetConnectionCredentials":
		return []any{map[string]dbus.Variant{"UnixUserID": dbus.MakeVariant(c.p.uid)}}, nil
	case "GetId":
		return []any{s.guid}, nil
	}
	return nil, nil
}

// broadcastLoop turns events into signals and queues them on every
// connection; it encodes each signal once per connection kind.
func (s *Server) broadcastLoop() {
	defer s.wg.Done()
	for {
		select {
		case ev := <-s.events:
			for _, msg := range eventSignals(ev) {
				s.broadcast(msg)
			}
		case <-s.done:
			return
		}
	}
}

func (s *Server) broadcast(msg *dbus.Message) {
	s.mu.Lock()
	conns := make([]*peerConn, 0, len(s.conns))
	for p := range s.conns {
		conns = append(conns, p)
	}
	s.mu.Unlock()
	var direct, bus []byte
	for _, p := range conns {
		frame := &bus
		if !p.onBus {
			frame = &direct
		}
		if *frame == nil {
			m := *msg
			m.Headers = map[dbus.HeaderField]dbus.Variant{}
			for k, v := range msg.Headers {
				m.Headers[k] = v
			}
			if !p.onBus {
				m.Headers[dbus.FieldSender] = dbus.MakeVariant(busName)
			}
			b, err := encodeWire(&m)
			if err != nil {
				s.opts.Logf("dbus: encode signal: %v", err)
				return
			}
			*frame = b
		}
		p.trySend(*frame)
	}
}

// eventSignals maps a manager event onto systemd's signals.
func eventSignals(ev Event) []*dbus.Message {
	switch ev.Kind {
	case EventJobNew:
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "JobNew",
			uint32(ev.Job.ID), JobPath(ev.Job.ID), ev.Job.Unit)}
	case EventJobRemoved:
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "JobRemoved",
			uint32(ev.Job.ID), JobPath(ev.Job.ID), ev.Job.Unit, orDefault(ev.Job.Result, "done"))}
	case EventUnitNew:
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "UnitNew", ev.Unit, UnitPath(ev.Unit))}
	case EventUnitRemoved:
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "UnitRemoved", ev.Unit, UnitPath(ev.Unit))}
	case EventUnitChanged:
		changed := []propEntry{
			{"ActiveState", dbus.MakeVariant(ev.ActiveState)},
			{"SubState", dbus.MakeVariant(ev.SubState)},
		}
		return []*dbus.Message{signalMessage(UnitPath(ev.Unit), ifaceProperties, "PropertiesChanged",
			ifaceUnit, changed, []string{})}
	case EventReloading:
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "Reloading", ev.Active)}
	case EventUnitFilesChanged:
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "UnitFilesChanged")}
	case EventStartupFinished:
		var d [6]uint64
		for i, x := range ev.Startup {
			d[i] = uint64(x / time.Microsecond)
		}
		return []*dbus.Message{signalMessage(managerPath, ifaceManager, "StartupFinished", d[0], d[1], d[2], d[3], d[4], d[5])}
	}
	return nil
}
