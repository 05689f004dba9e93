package dbus

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// SystemBusSocket is where the system bus listens.
const SystemBusSocket = "/run/dbus/system_bus_socket"

// Bus request timeouts.
const (
	busCallTimeout  = 5 * time.Second
	busRetryMinimum = 200 * time.Millisecond
	busRetryMaximum = 5 * time.Second
	busWorkers      = 16
	uidCacheLimit   = 4096
)

// uidCache remembers the uid behind a unique bus name. Unique names are
// never reused while the bus runs, so an entry never goes stale; the cache
// is simply emptied when it is full or the bus connection ends.
type uidCache struct {
	mu   sync.Mutex
	uids map[string]uint32
}

func (u *uidCache) get(name string) (uint32, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.uids[name]
	return v, ok
}

func (u *uidCache) put(name string, uid uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.uids == nil || len(u.uids) >= uidCacheLimit {
		u.uids = map[string]uint32{}
	}
	u.uids[name] = uid
}

// callerUID identifies the caller of c: the peer's credentials on a
// peer-to-peer connection, the bus's word for the sender on the bus.
func (s *Server) callerUID(c *call) (uint32, error) {
	if !c.p.onBus {
		return c.p.uid, nil
	}
	sender, _ := c.msg.Headers[dbus.FieldSender].Value().(string)
	if sender == "" {
		return 0, fmt.Errorf("message has no sender")
	}
	if c.p.uids != nil {
		if uid, ok := c.p.uids.get(sender); ok {
			return uid, nil
		}
	}
	reply, err := c.p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "GetConnectionUnixUser", busCallTimeout, sender)
	if err != nil {
		return 0, err
	}
	uid, ok := reply.Body[0].(uint32)
	if len(reply.Body) != 1 || !ok {
		return 0, fmt.Errorf("GetConnectionUnixUser answered %v", reply.Body)
	}
	if c.p.uids != nil {
		c.p.uids.put(sender, uid)
	}
	return uid, nil
}

// ServeSystemBus keeps Vigil on the system bus at socketPath (empty means
// SystemBusSocket) under the name org.freedesktop.systemd1 until ctx ends:
// it connects when the bus appears, and again whenever the bus goes away
// and comes back. It polls for the socket with a backoff of up to 5 s.
func (s *Server) ServeSystemBus(ctx context.Context, socketPath string) {
	if socketPath == "" {
		socketPath = SystemBusSocket
	}
	delay := busRetryMinimum
	for {
		start := time.Now()
		err := s.serveBusOnce(ctx, socketPath)
		if ctx.Err() != nil || s.isClosed() {
			return
		}
		if err != nil && !os.IsNotExist(err) {
			s.opts.Logf("dbus: system bus: %v", err)
		}
		if time.Since(start) > busRetryMaximum {
			delay = busRetryMinimum // it ran for a while: a fresh failure
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, busRetryMaximum)
	}
}

// serveBusOnce connects, claims the name and serves until the bus closes.
func (s *Server) serveBusOnce(ctx context.Context, socketPath string) error {
	if _, err := os.Stat(socketPath); err != nil {
		return err
	}
	d := net.Dialer{Timeout: busCallTimeout}
	nc, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return fmt.Errorf("connect %s: %w", socketPath, err)
	}
	c := nc.(*net.UnixConn)
	c.SetDeadline(time.Now().Add(busCallTimeout))
	if err := ClientHandshake(c, c, uint32(os.Getuid())); err != nil {
		c.Close()
		return fmt.Errorf("%s: %w", socketPath, err)
	}
	c.SetDeadline(time.Time{})
	p := newPeerConn(c, s.opts.QueueLength, true)
	p.uids = &uidCache{}
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.serve(p, bufio.NewReaderSize(c, 64<<10), busWorkers)
	}()
	stop := context.AfterFunc(ctx, p.Close)
	defer stop()
	hello, err := p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "Hello", busCallTimeout)
	if err != nil {
		p.Close()
		<-served
		return fmt.Errorf("say hello to the bus: %w", err)
	}
	if len(hello.Body) == 1 {
		p.name, _ = hello.Body[0].(string)
	}
	// 4 = DBUS_NAME_FLAG_DO_NOT_QUEUE: own it now or fail and retry.
	reply, err := p.call(ifaceDBus, "/org/freedesktop/DBus", ifaceDBus, "RequestName", busCallTimeout, busName, uint32(4))
	if err != nil {
		p.Close()
		<-served
		return fmt.Errorf("RequestName %s: %w", busName, err)
	}
	if code, _ := reply.Body[0].(uint32); code != 1 && code != 4 {
		p.Close()
		<-served
		return fmt.Errorf("RequestName %s: the name is taken (reply %d)", busName, code)
	}
	s.opts.Logf("dbus: serving %s on %s as %s", busName, socketPath, p.name)
	stopScopeStops := s.offerScopeStops(p)
	defer stopScopeStops()
	defer s.forgetControllersOf(p) // controller.go
	<-served
	return nil
}
