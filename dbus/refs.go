package dbus

import (
	"github.com/godbus/dbus/v5"
)

// refHolder is who holds a unit reference (StartTransientUnit's AddRef):
// a peer-to-peer connection, or one sender on the bus connection. The
// reference goes when the connection closes or the bus says the sender
// left (NameOwnerChanged), as systemd's bus tracking does.
type refHolder struct {
	p      *peerConn
	sender string
}

func (s *Server) holderOf(c *call) refHolder {
	h := refHolder{p: c.p}
	if c.p.onBus {
		h.sender, _ = c.msg.Headers[dbus.FieldSender].Value().(string)
	}
	return h
}

// holdRef records that the caller of c holds unit; the manager's side of
// the reference is taken by StartTransient itself.
func (s *Server) holdRef(c *call, unit string) {
	h := s.holderOf(c)
	s.refMu.Lock()
	if s.refs == nil {
		s.refs = map[refHolder]map[string]int{}
	}
	first := s.refs[h] == nil
	if first {
		s.refs[h] = map[string]int{}
	}
	s.refs[h][unit]++
	s.refMu.Unlock()
	if first && h.sender != "" {
		// Ask the bus to tell us when the sender goes. The reply is not
		// awaited here: the worker must not hold up the call.
		rule := "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" + h.sender + "'"
		go func() {
			if _, err := c.p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "AddMatch", busCallTimeout, rule); err != nil {
				s.opts.Logf("dbus: watch %s: %v", h.sender, err)
			}
		}()
	}
}

// dropRef releases one reference the caller of c holds on unit, if any.
func (s *Server) dropRef(c *call, unit string) {
	h := s.holderOf(c)
	s.refMu.Lock()
	held := s.refs[h][unit] > 0
	if held {
		s.refs[h][unit]--
		if s.refs[h][unit] == 0 {
			delete(s.refs[h], unit)
		}
	}
	s.refMu.Unlock()
	if held {
		if err := s.m.UnrefUnit(unit); err != nil {
			s.opts.Logf("dbus: unref %s: %v", unit, err)
		}
	}
}

// releaseRefs drops every reference of a holder: all of p's when sender
// is empty.
func (s *Server) releaseRefs(p *peerConn, sender string) {
	var units []string
	s.refMu.Lock()
	for h, held := range s.refs {
		if h.p != p || sender != "" && h.sender != sender {
			continue
		}
		for u, n := range held {
			for i := 0; i < n; i++ {
				units = append(units, u)
			}
		}
		delete(s.refs, h)
	}
	s.refMu.Unlock()
	for _, u := range units {
		if err := s.m.UnrefUnit(u); err != nil {
			s.opts.Logf("dbus: unref %s: %v", u, err)
		}
	}
}

// busSignal handles a signal the bus sent us: NameOwnerChanged of a
// client that held references or of a scope's controller.
func (s *Server) busSignal(p *peerConn, frame []byte) {
	msg, err := decodeFrame(frame)
	if err != nil {
		return
	}
	member, _ := msg.Headers[dbus.FieldMember].Value().(string)
	sender, _ := msg.Headers[dbus.FieldSender].Value().(string)
	if member != "NameOwnerChanged" || sender != ifaceDBus || len(msg.Body) != 3 {
		return
	}
	name, _ := msg.Body[0].(string)
	newOwner, _ := msg.Body[2].(string)
	if name == "" || newOwner != "" {
		return
	}
	go s.releaseRefs(p, name)
	go s.busNameGone(p, name) // a scope's controller (controller.go)
}
