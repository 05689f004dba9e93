package dbus

// Scope controllers on the system bus, as systemd's
// bus_scope_track_controller and on_controller_gone keep them: a scope
// made over the bus with a Controller (a bus name, usually its client's)
// has that name watched (a NameOwnerChanged match for it, then
// NameHasOwner in case it left before the match took); when the bus says
// the name has no owner any more, the manager forgets the controller
// (ForgetBusName), so that a later stop neither sends RequestStop to it,
// nor to whoever takes a well-known name next, nor waits for it. The
// match goes with the name.
//
// When the bus connection ends, every controller watched on it is
// forgotten, as sd-bus dispatches its trackers when a bus closes: a bus
// started again numbers its clients afresh, so an old ":1.42" could name
// someone else there. Only scopes made on the bus connection are watched:
// a Controller given over /run/systemd/private is checked when the scope
// is stopped (offerScopeStops asks NameHasOwner after its RequestStop).

// busNameForgetter is a manager told of bus names that left the bus.
type busNameForgetter interface {
	ForgetBusName(name string)
}

func (a *unitsAdapter) ForgetBusName(name string) {
	a.loop.Do(func() { a.m.ForgetBusName(name) })
}

// controllerGoneRule matches the bus's NameOwnerChanged for name.
func controllerGoneRule(name string) string {
	return "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" + name + "'"
}

// watchController watches the controller name of a scope that the call c
// made, when c came over the bus. It does not wait for the bus.
func (s *Server) watchController(c *call, name string) {
	if !c.p.onBus || !validBusName(name) {
		return
	}
	p := c.p
	s.ctlMu.Lock()
	if s.controllers == nil {
		s.controllers = map[*peerConn]map[string]bool{}
	}
	for q := range s.controllers {
		select {
		case <-q.closed:
			delete(s.controllers, q) // a bus connection that ended
		default:
		}
	}
	if s.controllers[p] == nil {
		s.controllers[p] = map[string]bool{}
	}
	watched := s.controllers[p][name]
	s.controllers[p][name] = true
	s.ctlMu.Unlock()
	if watched {
		return
	}
	go func() {
		if _, err := p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "AddMatch", busCallTimeout, controllerGoneRule(name)); err != nil {
			s.opts.Logf("dbus: watch scope controller %s: %v", name, err)
			return
		}
		// It may have left before the match was in place.
		reply, err := p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "NameHasOwner", busCallTimeout, name)
		if err != nil || len(reply.Body) != 1 {
			return
		}
		if has, ok := reply.Body[0].(bool); ok && !has {
			s.busNameGone(p, name)
		}
	}()
}

// busNameGone takes the bus's word that name has no owner any more: the
// manager forgets it as a controller, and a match of ours for it goes.
func (s *Server) busNameGone(p *peerConn, name string) {
	s.ctlMu.Lock()
	watched := s.controllers[p][name]
	delete(s.controllers[p], name)
	s.ctlMu.Unlock()
	if f, ok := s.m.(busNameForgetter); ok {
		f.ForgetBusName(name)
	}
	if watched {
		if _, err := p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "RemoveMatch", busCallTimeout, controllerGoneRule(name)); err != nil {
			select {
			case <-p.closed:
			default:
				s.opts.Logf("dbus: unwatch scope controller %s: %v", name, err)
			}
		}
	}
}

// forgetControllersOf forgets the controllers watched on the bus
// connection p, which has ended.
func (s *Server) forgetControllersOf(p *peerConn) {
	s.ctlMu.Lock()
	names := s.controllers[p]
	delete(s.controllers, p)
	s.ctlMu.Unlock()
	f, ok := s.m.(busNameForgetter)
	if !ok {
		return
	}
	for name := range names {
		f.ForgetBusName(name)
	}
}
