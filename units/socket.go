package units

// Socket activation: the behaviour of .socket units, and how a service
// receives the listening fds (or, under accept = true, one connection).
//
// A socket unit opens its listeners when it starts (units/sockets.Open)
// and hands them to one watcher on the manager's single "socket" source.
// The first readable listener posts one event and pauses the whole unit:
// with accept = false the manager then starts the service, which gets
// every listener from fd 3 (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) and
// accepts the waiting connections itself; the watch resumes only when the
// service is down again. Connections that arrive meanwhile wait in the
// kernel's backlog, so none is lost however long the service takes to
// start. With accept = true the manager accepts each connection and
// starts an instance with the connection as its only fd, named as systemd
// names it (instanceOf: NAME@N-LOCAL-REMOTE.service, NAME@N-PID-UID.service
// on a unix socket). The socket's own commands and the states they run in
// are in socketexec.go.

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/units/api"
	"vigil/units/exec"
	"vigil/units/sockets"
	"vigil/units/unitfile"
)

// Socket sub-states, as systemd names them.
const (
	sockDead      = "dead"
	sockListening = "listening"
	sockRunning   = "running"
	sockFailed    = "failed"
)

// Socket results beyond the service ones.
const (
	resultServiceStartLimitHit = "service-start-limit-hit"
	resultTriggerFailed        = "trigger-failed"
)

// acceptBatch bounds the connections accepted per readable event, so that
// a flood cannot hold the loop; what is left fires again at Resume.
const acceptBatch = 64

// stdioSocketFD marks a standard stream that is the accepted connection
// (standard-input = "socket"): execSpec cannot know the connection, the
// service fills it in.
const stdioSocketFD = -1

// socketUnit is the behaviour of .socket units.
type socketUnit struct {
	u   *Unit
	m   *Manager
	cfg *unitfile.SocketSection

	state      string
	result     string
	failReason string

	listeners []*sockets.Listener
	watcher   *sockets.Watcher

	// ctl runs the socket's own commands (socketexec.go); startAgain is
	// a start asked for while stopping, begun once the stop is through.
	ctl        socketControl
	startAgain bool

	// accept = true bookkeeping, as systemd's NAccepted, NConnections and
	// NRefused; perSource counts the live connections per peer.
	nAccepted    int
	nConnections int
	nRefused     int
	perSource    map[string]int
	instances    map[*service]string // live instance -> its peer key
}

func newSocketUnit(u *Unit) *socketUnit {
	return &socketUnit{u: u, m: u.m, cfg: u.cfg.Socket, state: sockDead, result: resultSuccess,
		ctl:       socketControl{sessions: map[int]bool{}},
		perSource: map[string]int{}, instances: map[*service]string{}}
}

func (k *socketUnit) setState(sub string) {
	k.state = sub
	var a ActiveState
	switch sub {
	case sockListening, sockRunning:
		a = StateActive
	case sockStartPre, sockStartPost:
		a = StateActivating
	case sockStopPre, sockStopPreSigterm, sockStopPreSigkill, sockStopPost, sockFinalSigterm, sockFinalSigkill:
		a = StateDeactivating
	case sockFailed:
		a = StateFailed
	default:
		a = StateInactive
	}
	k.u.SetState(a, sub)
}

// Reconfigure takes the new file; open listeners stay as they are until
// the unit is restarted, as in systemd.
func (k *socketUnit) Reconfigure() { k.cfg = k.u.cfg.Socket }

func (k *socketUnit) FailureReason() string { return k.failReason }

// serviceName is the unit the socket activates: service = ..., its own
// name with .service, or the NAME@.service template under accept = true.
func (k *socketUnit) serviceName() string { return k.cfg.Service }

// Start begins an activation (socketexec.go has the states); a start
// asked for while the unit is stopping waits for the stop, as in systemd.
func (k *socketUnit) Start() error {
	switch {
	case k.state == sockListening || k.state == sockRunning || k.starting():
		return nil
	case sockStopping(k.state):
		k.startAgain = true
		return nil
	}
	k.beginStart()
	return nil
}

// starting reports whether a start is under way (the job engine then
// waits for its outcome instead of starting again).
func (k *socketUnit) starting() bool {
	return k.state == sockStartPre || k.state == sockStartPost || (k.startAgain && sockStopping(k.state))
}

// checkListen finds what makes the listen-* settings unusable before
// anything runs; "" when they are fine.
func (k *socketUnit) checkListen() string {
	if k.cfg.Accept {
		for _, a := range k.listenAddresses() {
			if a.Kind != sockets.Stream && a.Kind != sockets.SeqPacket {
				return fmt.Sprintf("accept = true needs stream or sequential-packet sockets, not %s %s", a.Kind.Key(), a)
			}
		}
	}
	if _, err := sockets.FromSection(k.u.Name, k.cfg); err != nil {
		return err.Error()
	}
	return ""
}

// openListeners opens the listen-* sockets; the watch begins at
// enterListening.
func (k *socketUnit) openListeners() error {
	spec, err := sockets.FromSection(k.u.Name, k.cfg)
	if err != nil {
		return err
	}
	ls, err := sockets.Open(spec)
	if err != nil {
		return err
	}
	k.listeners = ls
	return nil
}

// enterListening watches the open listeners for the first connection.
func (k *socketUnit) enterListening() {
	k.watcher = sockets.WatchOn(k.m.socketEvents, k.listeners, k.u.Name)
	k.setState(sockListening)
	if !k.cfg.Accept {
		if svc := k.m.units[k.serviceName()]; svc != nil && !svc.active.IsInactiveOrFailed() {
			k.setState(sockRunning)
		}
	}
}

// listenAddresses parses the listen-* keys for checks before opening.
func (k *socketUnit) listenAddresses() []sockets.Address {
	spec, err := sockets.FromSection(k.u.Name, k.cfg)
	if err != nil {
		return nil
	}
	return spec.Listen
}

// fail stops a listening unit with a result: through stop-pre and
// stop-post (closing the listeners between them) into failed.
func (k *socketUnit) fail(result, reason string) {
	if result == "" {
		result = resultResources
	}
	if reason != "" {
		k.setFailReason(reason)
	}
	k.enterStopPre(result)
}

// stopWatching ends the watch; the listeners stay open.
func (k *socketUnit) stopWatching() {
	if k.watcher != nil {
		k.watcher.Close()
		k.watcher = nil
	}
}

func (k *socketUnit) closeListeners() {
	k.stopWatching()
	if len(k.listeners) > 0 {
		if err := sockets.CloseAll(k.listeners, k.cfg.RemoveOnStop); err != nil {
			k.u.warnf("%v", err)
		}
		k.listeners = nil
	}
}

// Stop runs stop-pre, closes the listeners and runs stop-post. A service
// that took the listeners keeps its copies and runs on; accepted
// instances run on too, as in systemd. A stop during start-pre or
// start-post signals the running command first.
func (k *socketUnit) Stop() error {
	k.startAgain = false
	switch {
	case sockStopping(k.state):
		return nil
	case k.state == sockStartPre || k.state == sockStartPost:
		k.enterSignal(sockStopPreSigterm, resultSuccess)
	case k.state == sockListening || k.state == sockRunning:
		k.enterStopPre(resultSuccess)
	default:
		k.closeListeners()
		k.setState(sockDead)
	}
	return nil
}

func (k *socketUnit) Reload() error   { return fmt.Errorf("%s cannot be reloaded", k.u.Name) }
func (k *socketUnit) CanReload() bool { return false }

// Kill signals the running command (whom "control" or "main" alike: a
// socket has no main process), or with "all" its sessions too.
func (k *socketUnit) Kill(whom string, sig int) error {
	var pids []int
	if k.ctl.pid != 0 {
		pids = append(pids, k.ctl.pid)
	}
	if whom == "all" || whom == "" {
		for sid := range k.ctl.sessions {
			if syscall.Kill(-sid, 0) == nil {
				pids = append(pids, -sid)
			}
		}
	}
	if len(pids) == 0 {
		return fmt.Errorf("%s has no processes", k.u.Name)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.Signal(sig)); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	return nil
}

func (k *socketUnit) ResetFailed() {
	if k.state == sockFailed {
		k.setState(sockDead)
	}
	k.result = resultSuccess
	k.failReason = ""
}

// readable is the watcher's event: a connection or datagram waits on l.
func (k *socketUnit) readable(l *sockets.Listener) {
	if k.state != sockListening && k.state != sockRunning || !k.owns(l) {
		return
	}
	if k.cfg.Accept {
		k.acceptConnections(l)
		return
	}
	name := k.serviceName()
	svc, err := k.m.LoadUnit(name)
	if err != nil || svc.LoadState != LoadLoaded {
		reason := fmt.Sprintf("the service to activate, %s, is not loaded", name)
		if svc != nil && svc.LoadError != "" {
			reason += ": " + svc.LoadError
		}
		k.u.errorf("%s", reason)
		k.fail(resultResources, reason)
		return
	}
	if !svc.active.IsInactiveOrFailed() {
		// Already up or on its way: it takes the connection; the watch
		// resumes when it is down again.
		k.setState(sockRunning)
		return
	}
	j, err := k.m.Enqueue(name, api.JobStart, api.ModeReplace)
	if err != nil {
		k.u.warnf("Failed to queue service startup job: %v", err)
		k.fail(resultResources, err.Error())
		return
	}
	k.setState(sockRunning)
	j.OnDone(func(j *Job) { k.activationDone(svc, j) })
}

// activationDone reacts to the end of the start job the socket queued: a
// service that may not start any more takes the socket down with it, or
// the socket would fire again forever.
func (k *socketUnit) activationDone(svc *Unit, j *Job) {
	if k.state != sockRunning && k.state != sockListening {
		return
	}
	if s, ok := svc.behaviour.(*service); ok && s.result == resultStartLimitHit {
		k.u.warnf("Service %s has hit its start limit; the socket stops listening.", svc.Name)
		k.fail(resultServiceStartLimitHit, fmt.Sprintf("%s hit its start limit", svc.Name))
		return
	}
	if j.Result != api.ResultDone && svc.active.IsInactiveOrFailed() {
		k.u.warnf("Triggered service %s failed to start (%s).", svc.Name, j.Result)
	}
	if svc.active.IsInactiveOrFailed() && k.watcher != nil {
		// The service never came up (a condition, a failed dependency):
		// nothing will resume the watch otherwise.
		k.setState(sockListening)
		k.watcher.Resume()
	}
}

// owns reports whether l is one of the unit's current listeners (events
// from a closed watcher may still be queued).
func (k *socketUnit) owns(l *sockets.Listener) bool {
	for _, x := range k.listeners {
		if x == l {
			return true
		}
	}
	return false
}

// serviceChanged follows the triggered service: running while it runs,
// listening again (and watching) once it is down.
func (k *socketUnit) serviceChanged(svc *Unit) {
	if k.cfg.Accept || (k.state != sockListening && k.state != sockRunning) {
		return
	}
	if svc.active.IsInactiveOrFailed() {
		if s, ok := svc.behaviour.(*service); ok && s.result == resultStartLimitHit {
			k.fail(resultServiceStartLimitHit, fmt.Sprintf("%s hit its start limit", svc.Name))
			return
		}
		if k.state == sockRunning {
			k.setState(sockListening)
		}
		if k.watcher != nil {
			k.watcher.Resume()
		}
		return
	}
	if k.state == sockListening {
		k.setState(sockRunning)
	}
}

// acceptConnections accepts what waits on l and starts one instance per
// connection, then watches again.
func (k *socketUnit) acceptConnections(l *sockets.Listener) {
	defer func() {
		if k.watcher != nil {
			k.watcher.Resume()
		}
	}()
	for i := 0; i < acceptBatch; i++ {
		fd, sa, err := unix.Accept4(l.FD(), unix.SOCK_CLOEXEC)
		switch {
		case err == unix.EAGAIN || err == unix.EWOULDBLOCK:
			return
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		case err != nil:
			k.u.errorf("Failed to accept a connection on %s: %v", l, err)
			return
		}
		conn := os.NewFile(uintptr(fd), "connection")
		peer, env := peerOf(fd, sa)
		if max := k.cfg.MaxConnections; max > 0 && k.nConnections >= max {
			k.nRefused++
			k.u.warnf("Too many incoming connections (%d), refusing connection attempt.", k.nConnections)
			conn.Close()
			continue
		}
		if max := k.cfg.MaxConnectionsPerSource; max > 0 && k.perSource[peer] >= max {
			k.nRefused++
			k.u.warnf("Too many incoming connections (%d) from source %s, refusing connection attempt.", k.perSource[peer], peer)
			conn.Close()
			continue
		}
		instance, err := instanceOf(fd, k.nAccepted)
		if err != nil {
			// The peer is gone already (a reset before we got to it).
			k.u.debugf("Connection went away before its service could start (%v); ignoring it.", err)
			conn.Close()
			continue
		}
		if err := k.startInstance(conn, instance, peer, env); err != nil {
			k.u.errorf("Failed to start the service for a connection: %v", err)
			conn.Close()
		}
	}
}

// startInstance loads NAME@INSTANCE.service for one connection and
// starts it. NAccepted counts the connections given to an instance, as
// systemd's does (refused ones are NRefused).
func (k *socketUnit) startInstance(conn *os.File, instance, peer string, env []string) error {
	tmpl, err := unitfile.ParseName(k.serviceName())
	if err != nil {
		return err
	}
	name := tmpl.WithInstance(instance)
	u, err := k.m.LoadUnit(name)
	if err != nil {
		return err
	}
	if u.LoadState != LoadLoaded {
		return fmt.Errorf("%s is %s: %s", name, u.LoadState, u.LoadError)
	}
	s, ok := u.behaviour.(*service)
	if !ok {
		return fmt.Errorf("%s is not a service", name)
	}
	if s.connection != nil || !u.active.IsInactiveOrFailed() {
		return fmt.Errorf("%s is already running", name)
	}
	k.nAccepted++
	s.connection, s.acceptedBy, s.remoteEnv = conn, k, env
	k.instances[s] = peer
	k.nConnections++
	k.perSource[peer]++
	if _, err := k.m.Enqueue(name, api.JobStart, api.ModeReplace); err != nil {
		k.instanceDone(s)
		return err
	}
	return nil
}

// instanceChanged follows an accepted instance: once it is down its
// connection is closed and counted out, and a cleanly finished instance
// is forgotten (a failed one stays for inspection, as in systemd).
func (k *socketUnit) instanceChanged(s *service) {
	u := s.u
	if !u.active.IsInactiveOrFailed() || s.state == svcAutoRestart {
		return
	}
	k.instanceDone(s)
	if u.active != StateInactive {
		return
	}
	m := k.m
	m.AfterFunc(0, func() {
		if m.units[u.Name] == u && u.active == StateInactive && u.job == nil {
			m.removeUnit(u)
		}
	})
}

func (k *socketUnit) instanceDone(s *service) {
	peer, ok := k.instances[s]
	if !ok {
		return
	}
	delete(k.instances, s)
	k.nConnections--
	if k.perSource[peer]--; k.perSource[peer] <= 0 {
		delete(k.perSource, peer)
	}
	if s.connection != nil {
		s.connection.Close()
		s.connection = nil
	}
	s.acceptedBy = nil
	s.remoteEnv = nil
}

// instanceOf names the instance for the nr-th accepted connection on fd as
// systemd's instance_from_socket does: "NR-LOCAL:PORT-REMOTE:PORT" for IP
// (an IPv4-mapped pair in dotted form, IPv6 without brackets), and
// "NR-PID-UID" of the peer on a unix socket ("NR-unknown" when the peer
// has no credentials to give). An error means the peer is gone.
func instanceOf(fd, nr int) (string, error) {
	local, err := unix.Getsockname(fd)
	if err != nil {
		return "", fmt.Errorf("getsockname: %w", err)
	}
	remote, err := unix.Getpeername(fd)
	if err != nil {
		return "", fmt.Errorf("getpeername: %w", err)
	}
	n := strconv.Itoa(nr)
	switch l := local.(type) {
	case *unix.SockaddrInet4:
		r, ok := remote.(*unix.SockaddrInet4)
		if !ok {
			return "", fmt.Errorf("peer address of another family than %v", local)
		}
		return n + "-" + netip.AddrFrom4(l.Addr).String() + ":" + strconv.Itoa(l.Port) + "-" +
			netip.AddrFrom4(r.Addr).String() + ":" + strconv.Itoa(r.Port), nil
	case *unix.SockaddrInet6:
		r, ok := remote.(*unix.SockaddrInet6)
		if !ok {
			return "", fmt.Errorf("peer address of another family than %v", local)
		}
		la, ra := netip.AddrFrom16(l.Addr), netip.AddrFrom16(r.Addr)
		if la.Is4In6() && ra.Is4In6() {
			la, ra = la.Unmap(), ra.Unmap()
		}
		return n + "-" + la.String() + ":" + strconv.Itoa(l.Port) + "-" + ra.String() + ":" + strconv.Itoa(r.Port), nil
	case *unix.SockaddrUnix:
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || cred.Pid <= 0 {
			return n + "-unknown", nil
		}
		return n + "-" + strconv.Itoa(int(cred.Pid)) + "-" + strconv.Itoa(int(cred.Uid)), nil
	}
	return n + "-unknown", nil
}

// peerOf names a connection's source for max-connections-per-source (the
// peer's IP address, or its UID on a unix socket, as systemd) and gives
// the REMOTE_ADDR/REMOTE_PORT variables of IP peers.
func peerOf(fd int, sa unix.Sockaddr) (string, []string) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ip := netip.AddrFrom4(a.Addr)
		return ip.String(), []string{"REMOTE_ADDR=" + ip.String(), "REMOTE_PORT=" + strconv.Itoa(a.Port)}
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr).Unmap()
		return ip.String(), []string{"REMOTE_ADDR=" + ip.String(), "REMOTE_PORT=" + strconv.Itoa(a.Port)}
	}
	if cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
		return "uid " + strconv.Itoa(int(cred.Uid)), nil
	}
	return "unknown", nil
}

// addresses lists the listeners for display: "ADDR (Stream)".
func (k *socketUnit) addresses() []string {
	var out []string
	if len(k.listeners) > 0 {
		for _, l := range k.listeners {
			out = append(out, l.String()+" ("+kindTitle(l.Kind)+")")
		}
		return out
	}
	for _, a := range k.listenAddresses() {
		out = append(out, a.String()+" ("+kindTitle(a.Kind)+")")
	}
	return out
}

// kindTitle is systemd's word for a listener kind in status and show.
func kindTitle(kind sockets.Kind) string {
	switch kind {
	case sockets.Stream:
		return "Stream"
	case sockets.Datagram:
		return "Datagram"
	case sockets.SeqPacket:
		return "SequentialPacket"
	case sockets.FIFO:
		return "FIFO"
	case sockets.Netlink:
		return "Netlink"
	case sockets.Special:
		return "Special"
	}
	return string(kind)
}

// listExtra is the socket's columns in `initctl list --type socket`.
func (k *socketUnit) listExtra() map[string]string {
	return map[string]string{
		"listen":      strings.Join(k.addresses(), ", "),
		"activates":   k.serviceName(),
		"connections": strconv.Itoa(k.nConnections),
		"accepted":    strconv.Itoa(k.nAccepted),
	}
}

func (k *socketUnit) Describe(st *api.UnitStatus) {
	st.Result = k.result
	if st.Extra == nil {
		st.Extra = map[string]string{}
	}
	if k.ctl.pid != 0 {
		st.Processes = append(st.Processes, api.Process{PID: k.ctl.pid, Command: procCommand(k.ctl.pid), Control: true})
	}
	st.Extra["listen"] = strings.Join(k.addresses(), "\n")
	st.Extra["activates"] = k.serviceName()
	if k.cfg.Accept {
		st.Extra["accepted"] = strconv.Itoa(k.nAccepted)
		st.Extra["connections"] = strconv.Itoa(k.nConnections)
		st.Extra["refused"] = strconv.Itoa(k.nRefused)
	}
}

func (k *socketUnit) Properties() []api.Property {
	p := func(n, v string) api.Property { return api.Property{Name: n, Value: v} }
	return []api.Property{
		p("Listen", strings.Join(k.addresses(), " ")),
		p("Accept", yesno(k.cfg.Accept)),
		p("Result", k.result),
		p("NAccepted", strconv.Itoa(k.nAccepted)),
		p("NConnections", strconv.Itoa(k.nConnections)),
		p("NRefused", strconv.Itoa(k.nRefused)),
		p("MaxConnections", strconv.Itoa(k.cfg.MaxConnections)),
		p("MaxConnectionsPerSource", strconv.Itoa(k.cfg.MaxConnectionsPerSource)),
		p("RemoveOnStop", yesno(k.cfg.RemoveOnStop)),
		p("Backlog", strconv.Itoa(k.cfg.Backlog)),
		p("FileDescriptorName", k.cfg.FileDescriptorName),
		p("TimeoutUSec", unitfile.FormatDuration(k.cfg.Timeout)),
		p("ControlPID", strconv.Itoa(k.ctl.pid)),
	}
}

func (k *socketUnit) jobTimeout(string) time.Duration { return k.cfg.Timeout }

// setupSockets makes the one source every socket unit's watcher posts to
// and the observer that routes its events.
func (m *Manager) setupSockets() error {
	m.socketEvents = m.loop.NewSource("socket", 0)
	_, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "listening sockets",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"socket"}}}},
		Notify: m.onSocketEvent,
	})
	return err
}

func (m *Manager) onSocketEvent(ev *observer.Event) {
	l, ok := ev.Payload.(*sockets.Listener)
	if !ok || ev.Kind != "readable" {
		return
	}
	if u := m.units[ev.Attr("unit")]; u != nil {
		if k, ok := u.behaviour.(*socketUnit); ok {
			k.readable(l)
		}
	}
}

// triggering is implemented by the units that activate others (sockets,
// timers): they follow the state of what they triggered.
type triggering interface {
	triggeredChanged(u *Unit)
}

// noticeTriggers tells the units that activate u of its change.
func (m *Manager) noticeTriggers(u *Unit) {
	if s, isService := u.behaviour.(*service); isService && s.acceptedBy != nil {
		s.acceptedBy.instanceChanged(s)
	}
	for name := range u.deps[TriggeredBy] {
		if tu := m.units[name]; tu != nil {
			if t, ok := tu.behaviour.(triggering); ok {
				t.triggeredChanged(u)
			}
		}
	}
}

func (k *socketUnit) triggeredChanged(u *Unit) {
	if _, isService := u.behaviour.(*service); isService {
		k.serviceChanged(u)
	}
}

// activationSpec gives a service's process what socket activation and
// sd_notify give it: NOTIFY_SOCKET, the watchdog variables, and for the
// main process the fds (the accepted connection, or the listeners of its
// sockets and then its fd store) from fd 3 with LISTEN_FDS.
func (s *service) activationSpec(spec *exec.Spec, main bool) error {
	var env []string
	env = append(env, s.notifyEnv(main)...)
	if main {
		if d := s.watchdogInterval(); d > 0 {
			env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(d.Microseconds(), 10))
			spec.WatchdogPID = true
		}
		files, names := s.activationFiles()
		if len(files) > 0 {
			spec.ExtraFiles = files
			spec.FDNames = names
			spec.ListenFDs = true
		}
		env = append(env, s.remoteEnv...)
	}
	for _, st := range []*exec.Stdio{&spec.Stdin, &spec.Stdout, &spec.Stderr} {
		if st.Kind != exec.StdioFD || st.FD != stdioSocketFD {
			continue
		}
		if s.connection == nil {
			return fmt.Errorf("standard stream \"socket\" needs a connection from an accept = true socket unit")
		}
		st.FD = int(rawFile(s.connection))
	}
	if len(env) > 0 {
		spec.Env = dedupEnv(append(spec.Env, env...))
	}
	return nil
}

// activationFiles lists the fds a main process gets and their names.
func (s *service) activationFiles() ([]*os.File, []string) {
	if s.connection != nil {
		return []*os.File{s.connection}, []string{"connection"}
	}
	var files []*os.File
	var names []string
	seen := map[string]bool{}
	socketUnits := append(s.u.Deps(TriggeredBy), s.cfg.Sockets...)
	sort.Strings(socketUnits)
	for _, name := range socketUnits {
		name = s.m.canonical(name)
		if seen[name] {
			continue
		}
		seen[name] = true
		su := s.m.units[name]
		if su == nil {
			continue
		}
		k, ok := su.behaviour.(*socketUnit)
		if !ok || k.cfg.Accept {
			continue
		}
		for _, l := range k.listeners {
			files = append(files, l.File)
			names = append(names, l.Name)
		}
	}
	for _, e := range s.fdStore {
		files = append(files, e.file)
		names = append(names, e.name)
	}
	return files, names
}

// rawFile is f's fd without switching it to blocking mode (File.Fd would).
func rawFile(f *os.File) uintptr {
	var fd uintptr
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(x uintptr) { fd = x })
		return fd
	}
	return f.Fd()
}

// addActivationDeps adds what socket activation implies: a socket is
// ordered before the service it activates and triggers it (systemd's
// Before= and Triggers=); a service's sockets = ... are wanted and
// ordered before it.
func addActivationDeps(u *Unit, cfg *config, add func(*Unit, DepKind, string)) {
	switch {
	case cfg.Socket != nil && cfg.Type == unitfile.TypeSocket:
		if !cfg.Socket.Accept && cfg.Socket.Service != "" {
			add(u, Before, cfg.Socket.Service)
			add(u, Triggers, cfg.Socket.Service)
		}
	case cfg.Timer != nil && cfg.Type == unitfile.TypeTimer:
		add(u, Before, cfg.Timer.Unit)
		add(u, Triggers, cfg.Timer.Unit)
	case cfg.Path != nil && cfg.Type == unitfile.TypePath:
		add(u, Before, cfg.Path.Unit)
		add(u, Triggers, cfg.Path.Unit)
	case cfg.Service != nil && cfg.Type == unitfile.TypeService:
		for _, name := range cfg.Service.Sockets {
			add(u, Wants, name)
			add(u, After, name)
		}
	}
}
