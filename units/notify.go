package units

// The sd_notify side of the manager: the NOTIFY_SOCKET every service with
// notify-access reports to, the attribution of each message to a unit,
// and what a service does with READY=1, STATUS=, WATCHDOG=1, FDSTORE=1 and
// the rest (systemd's service_notify_message). The socket itself, its
// parsing and its bounds live in observer/notify.

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vigil/observer"
	"vigil/observer/notify"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// NotifyStats counts what the manager did with sd_notify messages, on top
// of what the socket itself refused (notify.Stats).
type NotifyStats struct {
	Socket notify.Stats
	// Accepted messages were attributed to a unit that may send them.
	Accepted uint64
	// Unattributed messages came from a process of no unit.
	Unattributed uint64
	// Refused messages came from a unit's process that notify-access
	// does not admit.
	Refused uint64
}

// listenNotify opens the NOTIFY_SOCKET and registers the manager's
// observer of its messages. A manager without it still runs; services of
// type notify then fail to start, with the reason in their log.
func (m *Manager) listenNotify() error {
	path := m.opts.NotifySocket
	if path == "-" {
		return nil
	}
	if path == "" {
		path = filepath.Join(m.opts.RuntimeDir, "notify")
	}
	sock, err := notify.Listen(m.loop, path, notify.Options{Logf: m.warnf})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	m.notify = sock
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "sd_notify messages",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"notify"}}}},
		Notify: m.onNotifyEvent,
	}); err != nil {
		sock.Close()
		m.notify = nil
		return err
	}
	return nil
}

// NotifySocket is the NOTIFY_SOCKET address services get, "" without one.
func (m *Manager) NotifySocket() string {
	if m.notify == nil {
		return ""
	}
	return m.notify.Addr()
}

// NotifyStats reads the notify counters.
func (m *Manager) NotifyStats() NotifyStats {
	st := m.notifyStats
	if m.notify != nil {
		st.Socket = m.notify.Stats()
	}
	return st
}

// noteNotifyRejection counts one refused message and logs it at the 1st,
// 2nd, 4th, 8th... time, so that a flooding process cannot flood the log.
func (m *Manager) noteNotifyRejection(counter *uint64, format string, args ...any) {
	*counter++
	if bits.OnesCount64(*counter) == 1 {
		m.warnf("notify: "+format+" (%d so far)", append(args, *counter)...)
	}
}

func (m *Manager) onNotifyEvent(ev *observer.Event) {
	msg, ok := ev.Payload.(*notify.Message)
	if !ok || ev.Kind != "message" {
		return
	}
	// Whatever fds no one takes are closed once the message is handled.
	defer msg.Close()
	s, how := m.notifySender(msg.PID)
	if s == nil {
		if msg.Barrier && msg.LastState == "" && !msg.Watchdog && msg.Status == nil {
			return // a bare barrier: answered by the socket already
		}
		m.noteNotifyRejection(&m.notifyStats.Unattributed, "message from PID %d, which belongs to no unit, ignored", msg.PID)
		return
	}
	ok, reason := notify.Allowed(s.notifyAccess(), msg.PID, notify.Processes{
		MainPID: s.mainPID, ControlPID: s.controlPID,
		Contains: func(pid int) bool { return pid == msg.PID && how != "" },
	})
	if !ok {
		m.noteNotifyRejection(&m.notifyStats.Refused, "%s: message from PID %d refused: %s", s.u.Name, msg.PID, reason)
		return
	}
	m.notifyStats.Accepted++
	s.notifyMessage(msg)
}

// notifySender finds the service pid belongs to: a main or control
// process the manager watches, a member of a unit's cgroup, or a member
// of a session a unit started (units without cgroups). how says which.
func (m *Manager) notifySender(pid int) (*service, string) {
	if owner, ok := m.pids[pid]; ok {
		if s, ok := owner.(*service); ok {
			return s, "watched process"
		}
	}
	if m.cgroups != nil {
		if cg, err := notify.CgroupOf(pid); err == nil {
			for _, u := range m.Units() {
				s, ok := u.behaviour.(*service)
				if !ok || s.cgroup == "" {
					continue
				}
				name := m.cgroups.Name(s.cgroup)
				if cg == name || strings.HasPrefix(cg, name+"/") {
					return s, "cgroup"
				}
			}
		}
	}
	if sid, state, ok := procSession(pid); ok && state != 'Z' {
		for _, u := range m.Units() {
			if s, ok := u.behaviour.(*service); ok && s.cgroup == "" && s.sessions[sid] {
				return s, "session"
			}
		}
	}
	return nil, ""
}

// notifyAccess is the unit's effective notify-access: the file's, changed
// at run time by NOTIFYACCESS=, and raised from none to main by an fd
// store, as systemd does.
func (s *service) notifyAccess() notify.Access {
	if s.accessOverride != "" {
		return s.accessOverride
	}
	a := notify.Access(s.cfg.NotifyAccess)
	if a == "" || a == notify.AccessNone {
		if s.isNotify() || s.cfg.Watchdog > 0 || s.cfg.FileDescriptorStoreMax > 0 {
			return notify.AccessMain
		}
		return notify.AccessNone
	}
	return a
}

// isNotify reports whether readiness comes from READY=1.
func (s *service) isNotify() bool {
	return s.cfg.Type == unitfile.ServiceNotify || s.cfg.Type == unitfile.ServiceNotifyReload
}

// notifyEnv is what a process of the unit gets to talk back: the socket
// for the main process unless notify-access is none, and for control
// processes only with exec or all.
func (s *service) notifyEnv(main bool) []string {
	if s.m.notify == nil {
		return nil
	}
	switch s.notifyAccess() {
	case notify.AccessNone:
		return nil
	case notify.AccessMain:
		if !main {
			return nil
		}
	}
	return []string{s.m.notify.Env()}
}

// notifyMessage acts on one admitted message.
func (s *service) notifyMessage(msg *notify.Message) {
	if msg.NotifyAccess != "" {
		if a, ok := notify.ParseAccess(msg.NotifyAccess); ok {
			s.accessOverride = a
		}
	}
	if msg.MainPID > 0 {
		s.notifyMainPID(msg)
	}
	if msg.Status != nil {
		s.statusText = *msg.Status
	}
	if msg.Errno != 0 {
		s.statusErrno = msg.Errno
	}
	if msg.BusError != "" {
		s.statusBusError = msg.BusError
	}
	if msg.WatchdogUSec != 0 {
		s.watchdogOverride = time.Duration(msg.WatchdogUSec) * time.Microsecond
		if s.watchdogTimer != 0 {
			s.armWatchdog()
		}
	}
	if msg.FDStoreRemove {
		s.fdStoreRemove(msg.FDName)
	}
	if msg.FDStore {
		s.fdStoreAdd(msg)
	}
	switch msg.LastState {
	case "READY":
		s.notifyReady()
	case "RELOADING":
		if s.state == svcRunning {
			s.u.infof("Reloading on the service's own notice.")
			s.reloadByNotify = true
			s.setState(svcReload)
			s.armTimeout(s.cfg.TimeoutStart)
		}
	case "STOPPING":
		s.notifyStopping()
	}
	if msg.WatchdogTrigger {
		s.u.errorf("Watchdog triggered by the service (WATCHDOG=trigger).")
		s.forceWatchdog()
	} else if msg.Watchdog {
		s.lastWatchdogPing = time.Now()
		s.armWatchdog()
	}
	if msg.ExtendTimeoutUSec != 0 {
		s.extendTimeout(time.Duration(msg.ExtendTimeoutUSec) * time.Microsecond)
	}
}

// notifyMainPID takes MAINPID=, in the states where systemd does, from a
// process that is root or gives a PID that belongs to the unit.
func (s *service) notifyMainPID(msg *notify.Message) {
	switch s.state {
	case svcStart, svcStartPost, svcRunning, svcReload:
	default:
		return
	}
	pid := msg.MainPID
	if pid == s.mainPID {
		return
	}
	if pid == os.Getpid() || syscall.Kill(pid, 0) != nil {
		s.u.warnf("New main PID %d does not exist or is the manager; ignored.", pid)
		return
	}
	owner, _ := s.m.notifySender(pid)
	if owner != s && msg.UID != 0 {
		s.u.warnf("New main PID %d does not belong to the service and the sender is not root; ignored.", pid)
		return
	}
	if s.mainPID != 0 {
		s.m.unwatchPID(s.mainPID)
	}
	s.u.debugf("Main PID is now %d (MAINPID= from PID %d).", pid, msg.PID)
	s.mainPID = pid
	s.m.watchPID(pid, s)
}

// notifyReady is READY=1: a notify service in start is up; a reload the
// service announced (or notify-reload's signal started) is over.
func (s *service) notifyReady() {
	s.readySeen = true
	switch s.state {
	case svcStart:
		if s.isNotify() {
			s.enterStartPost()
		}
	case svcReload:
		if s.controlPID == 0 && (s.reloadByNotify || s.cfg.Type == unitfile.ServiceNotifyReload) {
			s.reloadByNotify = false
			s.m.StopTimer(s.timer)
			s.timer = 0
			s.setState(svcRunning)
		}
	}
}

// notifyStopping is STOPPING=1: the service is on its way down by itself.
// Nothing is signalled until the stop timeout passes.
func (s *service) notifyStopping() {
	switch s.state {
	case svcStart, svcStartPost, svcRunning, svcReload:
	default:
		return
	}
	s.u.infof("The service announced it is stopping.")
	s.stopWatchdog()
	s.pending = nil
	s.afterControl = nil
	s.setState(svcStopSigterm)
	s.armTimer(s.cfg.TimeoutStop, func() {
		s.u.warnf("State '%s' timed out. Terminating.", s.state)
		if s.result == resultSuccess {
			s.result = resultTimeout
		}
		s.enterSignal(svcStopSigterm)
	})
	s.pollProcesses()
	s.checkEmpty()
}

// extendTimeout is EXTEND_TIMEOUT_USEC=: the running start, stop or reload
// timeout ends no sooner than d from now.
func (s *service) extendTimeout(d time.Duration) {
	if s.timer == 0 || s.timerFn == nil {
		return
	}
	switch serviceActiveState(s.state) {
	case StateActivating, StateDeactivating, StateReloading:
	default:
		return
	}
	deadline := time.Now().Add(d)
	if !deadline.After(s.timerDeadline) {
		return
	}
	fn := s.timerFn
	s.armTimer(d, fn)
}

// watchdogInterval is the effective watchdog-sec: the file's, or what the
// service asked for with WATCHDOG_USEC=.
func (s *service) watchdogInterval() time.Duration {
	if s.watchdogOverride > 0 {
		return s.watchdogOverride
	}
	if s.cfg.Watchdog == unitfile.Infinity {
		return 0
	}
	return s.cfg.Watchdog
}

// armWatchdog (re)starts the watchdog timer for one interval.
func (s *service) armWatchdog() {
	s.m.StopTimer(s.watchdogTimer)
	s.watchdogTimer = 0
	d := s.watchdogInterval()
	if d <= 0 || s.mainPID == 0 {
		return
	}
	switch s.state {
	case svcStart, svcStartPost, svcRunning, svcReload:
	default:
		return
	}
	s.watchdogTimer = s.m.AfterFunc(d, func() {
		s.watchdogTimer = 0
		s.u.errorf("Watchdog timeout (limit %s)!", unitfile.FormatDuration(d))
		s.failReason = fmt.Sprintf("%s: no watchdog ping within %s", s.u.Name, unitfile.FormatDuration(d))
		s.forceWatchdog()
	})
}

func (s *service) stopWatchdog() {
	s.m.StopTimer(s.watchdogTimer)
	s.watchdogTimer = 0
}

// forceWatchdog ends the service with result watchdog: its processes get
// watchdog-signal (SIGABRT by default, for a core dump), then the usual
// escalation; restart follows the policy.
func (s *service) forceWatchdog() {
	switch s.state {
	case svcStart, svcStartPost, svcRunning, svcReload:
	default:
		return
	}
	s.stopWatchdog()
	if s.result == resultSuccess {
		s.result = resultWatchdog
	}
	if s.failReason == "" {
		s.failReason = fmt.Sprintf("%s: watchdog triggered", s.u.Name)
	}
	s.m.StopTimer(s.timer)
	s.timer = 0
	s.pending = nil
	s.afterControl = nil
	s.watchdogKill = true
	s.enterSignal(svcStopSigterm)
}

// storedFD is one entry of a service's fd store.
type storedFD struct {
	name string
	file *os.File
}

// fdStoreAdd keeps the message's fds, up to file-descriptor-store-max.
func (s *service) fdStoreAdd(msg *notify.Message) {
	name := msg.FDName
	if name == "" {
		name = "stored"
	}
	max := s.cfg.FileDescriptorStoreMax
	for i, f := range msg.FDs {
		if f == nil {
			continue
		}
		if len(s.fdStore) >= max {
			if max == 0 {
				s.u.warnf("Received FDSTORE=1 but file-descriptor-store-max is 0; closing %d fds.", len(msg.FDs)-i)
			} else {
				s.u.warnf("The fd store is full (file-descriptor-store-max = %d); closing %d fds.", max, len(msg.FDs)-i)
			}
			break
		}
		s.fdStore = append(s.fdStore, storedFD{name: name, file: f})
		msg.FDs[i] = nil // ours now: msg.Close must leave it open
	}
}

// fdStoreRemove drops the stored fds named name.
func (s *service) fdStoreRemove(name string) {
	if name == "" {
		s.u.warnf("FDSTOREREMOVE=1 without FDNAME=; ignored.")
		return
	}
	kept := s.fdStore[:0]
	for _, e := range s.fdStore {
		if e.name == name {
			e.file.Close()
			continue
		}
		kept = append(kept, e)
	}
	clear(s.fdStore[len(kept):])
	s.fdStore = kept
}

// releaseFDStore closes every stored fd: the unit stopped for good.
func (s *service) releaseFDStore() {
	for _, e := range s.fdStore {
		e.file.Close()
	}
	s.fdStore = nil
}

// keepsFDStore reports whether the unit will come back soon enough that
// its fd store must survive: an automatic restart, or a restart job whose
// stop half is running.
func (s *service) keepsFDStore() bool {
	if s.state == svcAutoRestart {
		return true
	}
	j := s.u.job
	return j != nil && (j.Type == api.JobRestart || j.Type == api.JobTryRestart)
}

// notifyProperties are the sd_notify properties of `show`.
func (s *service) notifyProperties() []api.Property {
	p := func(k, v string) api.Property { return api.Property{Name: k, Value: v} }
	wd := ""
	if !s.lastWatchdogPing.IsZero() {
		wd = s.lastWatchdogPing.Format("Mon 2006-01-02 15:04:05 MST")
	}
	return []api.Property{
		p("NotifyAccess", string(s.notifyAccess())),
		p("StatusErrno", strconv.Itoa(s.statusErrno)),
		p("StatusBusError", s.statusBusError),
		p("WatchdogUSec", strconv.FormatInt(s.watchdogInterval().Microseconds(), 10)),
		p("WatchdogTimestamp", wd),
		p("FileDescriptorStoreMax", strconv.Itoa(s.cfg.FileDescriptorStoreMax)),
		p("NFileDescriptorStore", strconv.Itoa(len(s.fdStore))),
	}
}

// describeNotify adds the sd_notify details to a status.
func (s *service) describeNotify(st *api.UnitStatus) {
	extra := map[string]string{}
	if s.statusErrno != 0 {
		extra["status_errno"] = strconv.Itoa(s.statusErrno)
	}
	if s.statusBusError != "" {
		extra["status_bus_error"] = s.statusBusError
	}
	if d := s.watchdogInterval(); d > 0 {
		extra["watchdog"] = unitfile.FormatDuration(d)
	}
	if len(s.fdStore) > 0 {
		extra["fd_store"] = strconv.Itoa(len(s.fdStore))
	}
	if len(extra) == 0 {
		return
	}
	if st.Extra == nil {
		st.Extra = map[string]string{}
	}
	for k, v := range extra {
		st.Extra[k] = v
	}
}
