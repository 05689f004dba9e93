package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/mountinfo"
	"vigil/observer/uevent"
	"vigil/observer/uevent/blkid"
	"vigil/units/api"
	"vigil/units/fstab"
	"vigil/units/loopdev"
	"vigil/units/unitfile"
)

// Mount units (systemd's mount.c, in Vigil's shape).
//
// A .mount unit mounts with mount(2) directly: its options are split into
// the kernel's flags (ro, nosuid, nodev, noexec, relatime, bind, ...) and
// the file system's data string; options meant for user space (nofail,
// _netdev, x-*, ...) are dropped. The mount(2) and umount2(2) calls run on
// a goroutine, never on the loop, so a hanging device cannot stall the
// manager: when the unit's timeout passes first, the unit fails (the call
// itself cannot be cancelled and is left to finish in the kernel).
//
// The state follows the mount table: every "mount"/"umount" event of the
// mountinfo source (observer/mountinfo, started by the caller; the
// manager only follows its events) is applied to the unit of its mount
// point. So a mount made by someone else makes its unit active — a
// "foreign" unit without a file, created on the fly, as systemd does —
// and an external umount makes it inactive.

// MountSource is the name of the source whose events mount units follow
// (the default name of mountinfo.Watch's source).
const MountSource = mountinfo.SourceName

// mountSyscalls are the kernel calls of mount units; tests replace them to
// make a call hang or fail.
type mountSyscalls interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
}

type kernelMounts struct{}

// The calls run with signals kept off their thread: see sigmask.go.
func (kernelMounts) Mount(source, target, fstype string, flags uintptr, data string) error {
	return callWithSignalsOff(func() error { return unix.Mount(source, target, fstype, flags, data) })
}
func (kernelMounts) Unmount(target string, flags int) error {
	return callWithSignalsOff(func() error { return unix.Unmount(target, flags) })
}

// mountTable is the manager's view of the mount table, fed by the
// mountinfo source; it lives on the loop.
type mountTable struct {
	byID map[int]mountinfo.Mount
	sys  mountSyscalls
	// helperDirs are searched for mount.TYPE helpers (tests replace them).
	helperDirs []string
	// stopWatch ends the device watcher that starts wanted mounts on
	// hot-plug.
	stopWatch func()
	// stopJobWatch ends the job watcher that fails mounts whose device
	// did not appear (followDeviceWait).
	stopJobWatch func()
}

func newMountTable() *mountTable {
	return &mountTable{byID: map[int]mountinfo.Mount{}, sys: kernelMounts{}, helperDirs: mountHelperDirs()}
}

// at gives the top-most mount at where (the last one mounted there).
func (t *mountTable) at(where string) (mountinfo.Mount, bool) {
	var best mountinfo.Mount
	found := false
	for _, m := range t.byID {
		// An automount's autofs trigger is not the mount of its unit.
		if m.FSType == "autofs" {
			continue
		}
		if m.MountPoint == where && (!found || m.ID > best.ID) {
			best, found = m, true
		}
	}
	return best, found
}

// startMounts registers the observer of the mountinfo source and the
// hot-plug watcher. Called from New.
func (m *Manager) startMounts() error {
	if m.mounts == nil {
		m.mounts = newMountTable()
	}
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "mount table",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{MountSource}}}},
		Notify: m.onMountinfoEvent,
	}); err != nil {
		return err
	}
	m.mounts.stopWatch = m.WatchUnits(m.startWantedOnPlug)
	m.mounts.stopJobWatch = m.WatchJobs(m.followDeviceWait)
	// A device unit made by its first event starts active without a
	// transition to watch: follow the device events too (registered
	// after the device units' observer, so the units exist by then).
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "hot-plug mounts",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{DeviceSource}}, {Key: "kind", Op: observer.OpEq, Values: []string{"add", "change"}}}},
		Notify: func(ev *observer.Event) {
			u, ok := ev.Payload.(*uevent.Uevent)
			if !ok {
				return
			}
			for _, name := range uevent.UnitNames(u) {
				if dev := m.units[name]; dev != nil {
					m.startWantedOnPlug(dev)
				}
			}
		},
	}); err != nil {
		return err
	}
	return nil
}

func (m *Manager) onMountinfoEvent(ev *observer.Event) {
	t := m.mounts
	switch ev.Kind {
	case mountinfo.KindResync:
		table, ok := ev.Payload.([]mountinfo.Mount)
		if !ok {
			return
		}
		old := make([]mountinfo.Mount, 0, len(t.byID))
		for _, mt := range t.byID {
			old = append(old, mt)
		}
		for _, c := range mountinfo.Diff(old, table) {
			m.applyMountChange(c.Kind, c.Mount, ev.Mono)
		}
	case mountinfo.KindMount, mountinfo.KindUmount, mountinfo.KindRemount:
		mt, ok := ev.Payload.(mountinfo.Mount)
		if !ok {
			return
		}
		m.applyMountChange(ev.Kind, mt, ev.Mono)
	}
}

// applyMountChange applies one change of the mount table, read from the
// kernel at readAt (the loop's clock; the mountinfo source stamps its
// events so). A change read before the unit's own last mount or unmount
// call returned is older than what the unit knows: the table takes it,
// the unit's state does not (seenBefore).
func (m *Manager) applyMountChange(kind string, mt mountinfo.Mount, readAt time.Duration) {
	t := m.mounts
	name, err := unitfile.MountUnitName(mt.MountPoint)
	if err != nil {
		return // a path systemd cannot name either
	}
	switch kind {
	case mountinfo.KindMount, mountinfo.KindRemount:
		t.byID[mt.ID] = mt
		if mt.FSType == "autofs" {
			return // an automount's trigger (automount.go)
		}
		u := m.units[name]
		if u == nil {
			if len(name) > unitfile.MaxNameLength {
				return
			}
			u = m.newForeignMountUnit(name, mt)
			m.rebuildGraph()
		}
		if mb, ok := u.behaviour.(*mount); ok {
			if mb.seenBefore(readAt, mb.unmountedAt) {
				// The mount this unit has since unmounted (a quick
				// stop): its umount event is still to come. Until
				// then it is not the unit's (mounted).
				if mb.mountedAt <= mb.unmountedAt {
					mb.unmountedID = mt.ID
				}
				return
			}
			if kind == mountinfo.KindMount && mb.unmountedID == mt.ID {
				mb.unmountedID = 0 // the ID came back: a new mount
			}
			mb.seenMounted(mt)
		}
	case mountinfo.KindUmount:
		delete(t.byID, mt.ID)
		if u := m.units[name]; u != nil {
			if mb, ok := u.behaviour.(*mount); ok && mb.unmountedID == mt.ID {
				mb.unmountedID = 0
			}
		}
		if _, still := t.at(mt.MountPoint); still {
			return
		}
		u := m.units[name]
		if u == nil {
			return
		}
		mb, ok := u.behaviour.(*mount)
		if !ok {
			return
		}
		if mb.seenBefore(readAt, mb.mountedAt) {
			return // the mount before the unit's own new one (a quick restart)
		}
		mb.seenUnmounted()
		if isForeignMount(u) && u.job == nil && u.active.IsInactiveOrFailed() {
			m.removeUnit(u)
			m.rebuildGraph()
		}
	}
}

// isForeignMount reports whether u is a mount unit made from the mount
// table, without a file: a rescan of the unit files must keep it.
func isForeignMount(u *Unit) bool {
	mb, ok := u.behaviour.(*mount)
	return ok && mb.foreign && u.cfg != nil && u.cfg.Fragment == ""
}

// newForeignMountUnit adds the unit of a mount someone else made. Its
// configuration is what the table says; it ignores isolation and has no
// default dependencies, so neither isolating a target nor stopping a
// manager that is not PID 1 unmounts what it did not mount.
func (m *Manager) newForeignMountUnit(name string, mt mountinfo.Mount) *Unit {
	id, _ := unitfile.ParseName(name)
	cfg := &unitfile.Unit{
		Name: name, ID: id, Type: unitfile.TypeMount, LoadState: unitfile.LoadStateLoaded,
		Unit: unitfile.UnitSection{
			IgnoreOnIsolate: true, JobTimeout: unitfile.Infinity, OnFailureJobMode: "replace",
			RefuseManualStop:   isAPIMountPoint(mt.MountPoint),
			StartLimitInterval: 10 * time.Second, StartLimitBurst: 5,
			StartLimitAction: "none", FailureAction: "none", SuccessAction: "none", JobTimeoutAction: "none",
		},
		Mount: &unitfile.MountSection{What: mt.Source, Where: mt.MountPoint, FSType: mt.FSType,
			Options: mt.AllOptions(), DirectoryMode: 0o755, Timeout: 90 * time.Second},
	}
	u := m.newUnit(name)
	u.cfg = cfg
	u.Type = string(unitfile.TypeMount)
	u.LoadState = LoadLoaded
	u.startLimit.interval, u.startLimit.burst = cfg.Unit.StartLimitInterval, cfg.Unit.StartLimitBurst
	mb := newMount(u)
	mb.foreign = true
	u.behaviour = mb
	m.units[name] = u
	return u
}

// isAPIMountPoint reports whether where is the root or a kernel API file
// system the manager itself needs: stopping its unit by hand is refused.
func isAPIMountPoint(where string) bool {
	if where == "/" || where == "/run" {
		return true
	}
	for _, api := range []string{"/proc", "/sys", "/dev"} {
		if where == api || strings.HasPrefix(where, api+"/") {
			return true
		}
	}
	return false
}

// networkFSTypes are the file systems systemd orders after the network
// (fstype_is_network).
var networkFSTypes = []string{"afs", "ceph", "cifs", "smb3", "smbfs", "sshfs", "ncpfs", "ncp", "nfs", "nfs4",
	"gfs", "gfs2", "glusterfs", "pvfs2", "ocfs2", "lustre", "davfs", "9p"}

// isNetworkMount reports whether a mount needs the network: a network
// file system type, or the _netdev option.
func isNetworkMount(fstype, options string) bool {
	fstype = strings.TrimPrefix(fstype, "fuse.")
	if slices.Contains(networkFSTypes, fstype) {
		return true
	}
	return slices.Contains(strings.Split(options, ","), "_netdev")
}

// addMountDeps adds the implicit dependencies of mount and swap units
// (systemd's mount_add_extras): the parent mount point's unit, the device
// unit of a /dev source, and with default dependencies the file system
// targets and umount.target.
func (m *Manager) addMountDeps(u *Unit, cfg *config, add func(*Unit, DepKind, string)) {
	var what, options string
	var defaults bool
	switch {
	case cfg.Mount != nil && cfg.Type == unitfile.TypeMount:
		s := cfg.Mount
		what, options, defaults = resolveWhat(s.What), s.Options, cfg.Unit.DefaultDependencies
		// An image file (loop) or a bind source lives on a file system
		// of its own: the unit of the mount holding it comes first, as
		// systemd's requires-mounts-for of what.
		if p := path.Clean(what); path.IsAbs(what) && !strings.HasPrefix(p, "/dev/") && !isNetworkMount(s.FSType, s.Options) {
			for ; p != "/"; p = path.Dir(p) {
				name, err := unitfile.MountUnitName(p)
				if err != nil {
					continue
				}
				if pu := m.units[name]; pu != nil && pu != u && pu.LoadState == LoadLoaded && pu.Type == string(unitfile.TypeMount) {
					add(u, Requires, name)
					add(u, After, name)
					break
				}
			}
		}
		// Every mount point above this one that has a unit must be
		// mounted first.
		for p := path.Dir(s.Where); s.Where != "/"; p = path.Dir(p) {
			if name, err := unitfile.MountUnitName(p); err == nil {
				if pu := m.units[name]; pu != nil && pu.LoadState == LoadLoaded && pu.Type == string(unitfile.TypeMount) {
					add(u, Requires, name)
					add(u, After, name)
					break
				}
			}
			if p == "/" {
				break
			}
		}
		// A nofail mount is not waited for: the target is reached
		// without it (systemd's fstab-generator leaves out Before too).
		nofail := slices.Contains(strings.Split(s.Options, ","), "nofail")
		if defaults {
			if isNetworkMount(s.FSType, s.Options) {
				if !nofail {
					add(u, Before, "remote-fs.target")
				}
				add(u, After, "network.target")
			} else {
				if !nofail {
					add(u, Before, "local-fs.target")
				}
				add(u, After, "local-fs-pre.target")
			}
		}
	case cfg.Swap != nil && cfg.Type == unitfile.TypeSwap:
		what, options, defaults = cfg.Swap.What, cfg.Swap.Options, cfg.Unit.DefaultDependencies
		if defaults {
			add(u, Before, "swap.target")
		}
	default:
		return
	}
	if defaults {
		add(u, Conflicts, "umount.target")
		add(u, Before, "umount.target")
	}
	// A device that never comes would hold every start for the device
	// timeout: bind to devices only when the manager follows them.
	if m.devices.enabled && strings.HasPrefix(what, "/dev/") && !strings.Contains(options, "bind") {
		if name, err := unitfile.DeviceUnitName(path.Clean(what)); err == nil {
			add(u, BindsTo, name)
			add(u, After, name)
		}
	}
}

// startWantedOnPlug starts, when a device appears on its own (plugged,
// not by a job), the mount and swap units bound to it that something
// active wants, and the units that name the device in wanted-by: a disk
// plugged in later is mounted as if it had been there at boot.
func (m *Manager) startWantedOnPlug(dev *Unit) {
	if dev.Type != string(unitfile.TypeDevice) || dev.active != StateActive || dev.job != nil || m.shuttingDown {
		return
	}
	var names []string
	for _, name := range dev.Deps(BoundBy) {
		if u := m.units[name]; u != nil && (u.Type == string(unitfile.TypeMount) || u.Type == string(unitfile.TypeSwap)) && m.isWanted(u) {
			names = append(names, name)
		}
	}
	names = append(names, dev.Deps(Wants)...)
	for _, u := range m.Units() {
		if u.cfg != nil && u.LoadState == LoadLoaded && slices.Contains(u.cfg.Install.WantedBy, dev.Name) {
			names = append(names, u.Name)
		}
	}
	for _, name := range names {
		u := m.units[name]
		if u == nil || !u.active.IsInactiveOrFailed() || u.job != nil {
			continue
		}
		dev.infof("Device appeared: starting %s.", name)
		if _, err := m.Enqueue(name, api.JobStart, api.ModeReplace); err != nil {
			u.warnf("Cannot start on hot-plug of %s: %v", dev.Name, err)
		}
	}
}

// A mount whose device never appears.
//
// The job engine does the waiting: a mount binds to its device unit and is
// ordered after it, so the mount's start job waits for the device's start
// job, whose job-timeout bounds the wait (deviceJobTimeout: the device
// unit's own job-timeout, from x-systemd.device-timeout in fstab; else the
// longest timeout of the mounts bound to it; else the device default).
// Left alone, that timeout fails the mount's job with "dependency" and
// the unit stays inactive, as in systemd. Vigil instead fails the mount
// unit itself, with result "device-timeout" and a status naming the
// device, so `initctl --failed` and the automount's accessors tell what is
// wrong. followDeviceWait watches device start jobs; when one times out
// without its device, the start jobs of the mounts bound to it finish
// "failed" before the job engine would fail them as dependencies.

// resultDeviceTimeout is a mount unit's result when its device did not
// appear within the device timeout.
const resultDeviceTimeout = "device-timeout"

// followDeviceWait is the job watcher of mounts: it follows each device
// start job once it runs.
func (m *Manager) followDeviceWait(j *Job) {
	if j.State != jobRunning || j.Type != api.JobStart || j.Unit.Type != string(unitfile.TypeDevice) {
		return
	}
	dev := j.Unit
	// Done callbacks run before the job engine fails the dependents.
	j.OnDone(func(j *Job) {
		if j.Result != api.ResultTimeout {
			return
		}
		if d, ok := dev.behaviour.(*device); ok && d.devpath != "" {
			return
		}
		m.failMountsWithoutDevice(dev)
	})
}

// failMountsWithoutDevice fails the mount units bound to dev whose start
// job waits for it.
func (m *Manager) failMountsWithoutDevice(dev *Unit) {
	wait := dev.jobTimeout()
	for _, name := range dev.Deps(BoundBy) {
		u := m.units[name]
		if u == nil || u.job == nil || !u.active.IsInactiveOrFailed() {
			continue
		}
		mb, ok := u.behaviour.(*mount)
		if !ok {
			continue
		}
		j := u.job
		if j.Type != api.JobStart && (j.Type != api.JobRestart || j.phase == api.JobStop) {
			continue
		}
		what := mb.section().What
		if what == "" {
			what = dev.Name
		}
		mb.fail(resultDeviceTimeout, fmt.Sprintf("Device %s did not appear within %s", what, unitfile.FormatDuration(wait)))
		m.finishJob(j, api.ResultFailed, mb.reason)
	}
}

// boundMountTimeout is the device wait that the mounts bound to dev ask
// for: the longest of their timeouts; ok is false when none sets a finite
// one. deviceJobTimeout uses it when the device unit has no job-timeout.
func (m *Manager) boundMountTimeout(dev *Unit) (wait time.Duration, ok bool) {
	for _, name := range dev.Deps(BoundBy) {
		u := m.units[name]
		if u == nil || u.Type != string(unitfile.TypeMount) || u.cfg == nil || u.cfg.Mount == nil {
			continue
		}
		if t := u.cfg.Mount.Timeout; t > 0 && t != unitfile.Infinity && t > wait {
			wait, ok = t, true
		}
	}
	return wait, ok
}

// mountDeviceWait is how long a start of the mount unit u may wait for its
// device (0 when it binds to none).
func (m *Manager) mountDeviceWait(u *Unit) time.Duration {
	for _, name := range u.Deps(BindsTo) {
		if dev := m.units[name]; dev != nil && dev.Type == string(unitfile.TypeDevice) {
			return dev.jobTimeout()
		}
	}
	return 0
}

// isWanted reports whether an active (or starting) unit wants or requires u.
func (m *Manager) isWanted(u *Unit) bool {
	for _, k := range []DepKind{WantedBy, RequiredBy} {
		for _, name := range u.Deps(k) {
			if w := m.units[name]; w != nil && (w.active.IsActiveOrReloading() || w.active == StateActivating) {
				return true
			}
		}
	}
	return false
}

// mount is the behaviour of .mount units.
type mount struct {
	u *Unit
	// foreign is true for units made from the mount table.
	foreign bool
	// op numbers the mount and umount calls: a result that comes back
	// after its call was abandoned (timeout, stop) is ignored.
	op    int
	timer observer.TimerID
	// result and reason say why the unit last failed.
	result string
	reason string
	// helper is the mount helper of the current start, while it runs.
	helper *mountHelper
	// cgroup is the unit's group (relative to the manager's tree), made
	// when a start begins and removed when the unit goes down: mount
	// helpers and the daemons they leave (FUSE) run in it.
	cgroup string
	// unmountedID is the table's ID of the mount this unit unmounted last,
	// until the table's own event says it is gone.
	unmountedID int
	// mountedAt and unmountedAt are when (the loop's clock) the unit's
	// last successful mount and unmount calls returned: mount table
	// events read before them are late news (applyMountChange).
	mountedAt, unmountedAt time.Duration
	// automountStart is set while a start job asked for by the unit's
	// automount runs: it does not count against the start limit
	// (exemptFromStartLimit).
	automountStart bool
}

func newMount(u *Unit) *mount {
	mb := &mount{u: u, result: "success"}
	// A unit loaded after its file system was mounted starts active.
	if u.m.mounts != nil && u.cfg != nil && u.cfg.Mount != nil {
		if _, ok := u.m.mounts.at(u.cfg.Mount.Where); ok {
			u.active, u.sub = StateActive, "mounted"
			now := time.Now()
			u.activeEnter, u.inactiveExit, u.stateChange = now, now, now
		}
	}
	return mb
}

// section gives the unit's [mount]; a unit whose file went away while
// mounted keeps working from its name.
func (mb *mount) section() *unitfile.MountSection {
	if c := mb.u.cfg; c != nil && c.Mount != nil {
		return c.Mount
	}
	where := ""
	if n, err := unitfile.ParseName(mb.u.Name); err == nil {
		where, _ = unitfile.UnescapePath(n.Prefix)
	}
	return &unitfile.MountSection{Where: where, DirectoryMode: 0o755, Timeout: 90 * time.Second}
}

func (mb *mount) mounted() bool {
	mt, ok := mb.u.m.mounts.at(mb.section().Where)
	return ok && (mb.unmountedID == 0 || mt.ID != mb.unmountedID)
}

// seenBefore reports whether a table read at readAt predates a call of
// the unit's that returned at callAt. Events without a read time (0)
// are taken as new.
func (mb *mount) seenBefore(readAt, callAt time.Duration) bool {
	return readAt != 0 && callAt != 0 && readAt < callAt
}

// seenMounted applies a "mount" event at the unit's mount point.
func (mb *mount) seenMounted(mountinfo.Mount) {
	u := mb.u
	if u.active == StateActivating && mb.helper == nil {
		// The unit's own mount call is on its way and its return
		// decides: the table may show a first step (a bind mount still
		// to be remounted read-only). A helper, which may outlive its
		// mount, is taken at the table's word.
		return
	}
	switch u.active {
	case StateInactive, StateFailed, StateActivating:
		mb.cancelOp()
		u.SetState(StateActive, "mounted")
	}
}

// seenUnmounted applies the last "umount" at the unit's mount point.
func (mb *mount) seenUnmounted() {
	u := mb.u
	switch u.active {
	case StateActive, StateReloading, StateDeactivating:
		mb.cancelOp()
		if u.active == StateActive {
			u.infof("Unmounted by someone else.")
		}
		u.SetState(StateInactive, "dead")
	}
}

func (mb *mount) cancelOp() {
	mb.op++
	mb.u.m.StopTimer(mb.timer)
	mb.timer = 0
}

func (mb *mount) fail(result, reason string) {
	u := mb.u
	mb.killHelper()
	mb.cancelOp()
	mb.result, mb.reason = result, reason
	u.errorf("%s", reason)
	u.SetState(StateFailed, "failed")
}

// starting keeps a second start job from issuing a second mount call.
func (mb *mount) starting() bool { return mb.u.active == StateActivating }

func (mb *mount) Start() error {
	u := mb.u
	s := mb.section()
	if mb.mounted() {
		u.SetState(StateActive, "mounted")
		return nil
	}
	req, err := planMount(s)
	if err != nil {
		mb.fail("resources", fmt.Sprintf("mount %s: %v", s.Where, err))
		return nil
	}
	mb.result, mb.reason = "success", ""
	mb.cancelOp()
	op := mb.op
	if mb.cgroup == "" {
		mb.cgroup = u.m.commandCgroup(u)
	}
	u.SetState(StateActivating, "mounting")
	mb.armTimeout(s.Timeout, "mounting")
	sys := u.m.mounts.sys
	req.helperDirs = u.m.mounts.helperDirs
	go func() {
		helper, err := req.run(sys, s)
		doneAt := u.m.loop.Now()
		u.m.loop.Do(func() {
			if helper == nil && err == nil && op == mb.op {
				mb.mountedAt = doneAt
			}
			if helper != nil && err == nil {
				if op == mb.op {
					mb.startHelper(op, helper)
					return
				}
				helper.release(u.m)
			}
			mb.mountDone(op, err)
		})
	}()
	return nil
}

func (mb *mount) armTimeout(d time.Duration, doing string) {
	if d <= 0 || d == unitfile.Infinity {
		return
	}
	op := mb.op
	mb.timer = mb.u.m.AfterFunc(d, func() {
		if mb.op != op {
			return
		}
		mb.timer = 0
		if doing == "unmounting" {
			mb.cancelOp()
			mb.result, mb.reason = "timeout", fmt.Sprintf("unmounting %s timed out after %v", mb.section().Where, d)
			mb.u.warnf("%s", mb.reason)
			mb.u.SetState(StateActive, "mounted")
			if j := mb.u.job; j != nil {
				mb.u.m.finishJob(j, api.ResultTimeout, mb.reason)
			}
			return
		}
		mb.fail("timeout", fmt.Sprintf("mounting %s timed out after %v (the mount call is left to finish in the kernel)", mb.section().Where, d))
	})
}

func (mb *mount) mountDone(op int, err error) {
	u := mb.u
	s := mb.section()
	if op != mb.op {
		// The table may show the mount before the call returns: then
		// the unit is already active and nothing was abandoned.
		if err == nil && u.active != StateActive {
			u.infof("A mount of %s abandoned earlier has completed.", s.Where)
		}
		return
	}
	mb.cancelOp()
	if err != nil {
		mb.fail("exit-code", fmt.Sprintf("mount %s on %s: %v", s.What, s.Where, explainMountError(err, s)))
		return
	}
	mb.unmountedID = 0
	u.SetState(StateActive, "mounted")
}

func (mb *mount) Stop() error {
	u := mb.u
	s := mb.section()
	if u.active == StateActivating {
		// The mount call cannot be called back: abandon it. If it still
		// succeeds, the mount table will show it. A helper is killed.
		mb.killHelper()
		mb.cancelOp()
	}
	// The unit's own state decides, not the table: the table's event for
	// a mount just made may still be on its way.
	if u.active == StateActivating || (!u.active.IsActiveOrReloading() && !mb.mounted()) {
		mb.cancelOp()
		u.SetState(StateInactive, "dead")
		return nil
	}
	flags := unix.UMOUNT_NOFOLLOW
	if s.LazyUnmount {
		flags |= unix.MNT_DETACH
	}
	if s.ForceUnmount {
		flags |= unix.MNT_FORCE
	}
	mb.cancelOp()
	op := mb.op
	u.SetState(StateDeactivating, "unmounting")
	mb.armTimeout(s.Timeout, "unmounting")
	sys := u.m.mounts.sys
	where := s.Where
	go func() {
		err := sys.Unmount(where, flags)
		doneAt := u.m.loop.Now()
		u.m.loop.Do(func() {
			if op == mb.op && (err == nil || errors.Is(err, unix.EINVAL)) {
				mb.unmountedAt = doneAt
			}
			mb.unmountDone(op, err)
		})
	}()
	return nil
}

func (mb *mount) unmountDone(op int, err error) {
	u := mb.u
	if op != mb.op {
		return
	}
	mb.cancelOp()
	if err != nil && !errors.Is(err, unix.EINVAL) {
		mb.result, mb.reason = "exit-code", fmt.Sprintf("umount %s: %v", mb.section().Where, err)
		u.warnf("%s", mb.reason)
		if mb.mounted() {
			u.SetState(StateActive, "mounted")
			if j := u.job; j != nil {
				u.m.finishJob(j, api.ResultFailed, mb.reason)
			}
			return
		}
	}
	// EINVAL: it was not mounted any more. Either way the top mount is
	// gone, though the table shows it until its event comes: a start
	// meanwhile must not take it for its own (mounted).
	if mt, ok := u.m.mounts.at(mb.section().Where); ok && err == nil {
		mb.unmountedID = mt.ID
	}
	u.SetState(StateInactive, "dead")
}

func (mb *mount) Reload() error {
	return fmt.Errorf("%s cannot be reloaded (remount it with options remount)", mb.u.Name)
}
func (mb *mount) CanReload() bool        { return false }
func (mb *mount) Kill(string, int) error { return fmt.Errorf("%s has no processes", mb.u.Name) }
func (mb *mount) ResetFailed() {
	mb.result, mb.reason = "success", ""
	if mb.u.active == StateFailed {
		mb.u.SetState(StateInactive, "dead")
	}
}
func (mb *mount) Reconfigure() {
	mb.foreign = false
}

// FailureReason says why the unit failed, for the failed job.
func (mb *mount) FailureReason() string { return mb.reason }

func (mb *mount) Describe(st *api.UnitStatus) {
	st.Result = mb.result
	if mb.u.active == StateFailed && mb.reason != "" {
		st.StatusText = mb.reason
	}
	describeCommandCgroup(mb.u.m, mb.cgroup, st)
}

// releaseCgroupWhenDown removes the unit's group once the unit is down
// (unitWentDown); a group a daemon still holds stays, and is reused.
func (mb *mount) releaseCgroupWhenDown() {
	if mb.cgroup != "" && mb.u.m.releaseUnitCgroup(mb.u, mb.cgroup) {
		mb.cgroup = ""
	}
}

func (mb *mount) Properties() []api.Property {
	s := mb.section()
	props := []api.Property{{Name: "What", Value: s.What}, {Name: "Where", Value: s.Where},
		{Name: "Type", Value: s.FSType}, {Name: "Options", Value: s.Options},
		{Name: "Result", Value: mb.result}, {Name: "Foreign", Value: fmt.Sprint(mb.foreign)}}
	if mt, ok := mb.u.m.mounts.at(s.Where); ok {
		props = append(props, api.Property{Name: "MountID", Value: fmt.Sprint(mt.ID)},
			api.Property{Name: "MountedWhat", Value: mt.Source}, api.Property{Name: "MountedType", Value: mt.FSType},
			api.Property{Name: "MountedOptions", Value: mt.AllOptions()})
	}
	return props
}

func (mb *mount) jobMessage(jobType, event string) (string, bool) {
	desc := mb.u.describe()
	if mb.u.Description == "" {
		desc = mb.section().Where
	}
	switch event {
	case "starting":
		if jobType == api.JobStart {
			return "Mounting " + desc + "...", true
		}
		return "", true
	case "stopping":
		return "Unmounting " + desc + "...", true
	case api.ResultDone:
		if jobType == api.JobStop {
			return "Unmounted " + desc + ".", true
		}
		if mb.u.active.IsActiveOrReloading() {
			return "Mounted " + desc + ".", true
		}
		return "", true
	}
	return "", false
}

// mountRequest is a mount(2) call planned from a unit's settings.
type mountRequest struct {
	what, fstype string
	flags        uintptr
	data         string
	// propagation is MS_SHARED, MS_PRIVATE, ... (with MS_REC), applied by
	// a second call: the kernel takes it alone.
	propagation uintptr
	// remountBind applies ro, nosuid, ... to a bind mount, which the
	// kernel ignores on the first call.
	remountBind bool
	sloppy      bool
	// loop mounts what (a regular file) through a loop device; a file
	// named in what is looped without the option too, as mount(8) does.
	loop                      bool
	loopOffset, loopSizeLimit uint64
	// helperOptions is the -o of a mount helper (mount.TYPE).
	helperOptions string
	// helperDirs are searched for mount.TYPE (mountHelperDirs).
	helperDirs []string
}

// resolveWhat turns a UUID=, LABEL=, PARTUUID= or PARTLABEL= source into
// its /dev/disk/by-* link, as fstab's entries are; other sources are
// returned as they are.
func resolveWhat(what string) string {
	if r, err := fstab.ResolveSpec(what, "/dev/disk"); err == nil {
		return r
	}
	return what
}

func planMount(s *unitfile.MountSection) (*mountRequest, error) {
	opts, err := ParseMountOptions(s.Options)
	if err != nil {
		return nil, err
	}
	req := &mountRequest{what: resolveWhat(s.What), fstype: s.FSType, flags: opts.Flags, data: strings.Join(opts.Data, ","),
		propagation: opts.Propagation, sloppy: s.SloppyOptions}
	if s.ReadWriteOnly && opts.Flags&unix.MS_RDONLY != 0 {
		return nil, fmt.Errorf("options ask for read-only but read-write-only is set")
	}
	if req.flags&unix.MS_BIND != 0 {
		if opts.Loop {
			return nil, fmt.Errorf("options bind and loop exclude each other")
		}
		req.fstype = ""
		req.remountBind = req.flags&^(unix.MS_BIND|unix.MS_REC) != 0
		return req, nil
	}
	req.loop = opts.Loop
	for _, o := range opts.UserSpace {
		name, value, _ := strings.Cut(o, "=")
		var dst *uint64
		switch name {
		case "offset":
			dst = &req.loopOffset
		case "sizelimit":
			dst = &req.loopSizeLimit
		default:
			continue
		}
		n, err := strconv.ParseUint(value, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("option %s: want a number of bytes", o)
		}
		*dst = n
	}
	req.helperOptions = helperOptions(s.Options, opts)
	return req, nil
}

// helperOptions is the -o argument of a mount helper: the options as
// written, less those only Vigil and its generators read.
func helperOptions(written string, opts MountOptions) string {
	var out []string
	for _, o := range splitOptions(written) {
		if o == "" || slices.Contains(opts.UserSpace, o) {
			continue
		}
		out = append(out, o)
	}
	return strings.Join(out, ",")
}

// run does the mount, with everything that touches the file system (the
// mount point, the superblock probe, the loop device, a name lookup): off
// the loop, since any of it can hang on a dead device or server. When a
// mount helper is to do the mount instead, run prepares and returns it
// without mounting: helpers are started on the loop, where their exit is
// followed.
func (req *mountRequest) run(sys mountSyscalls, s *unitfile.MountSection) (*mountHelper, error) {
	if err := prepareMountPoint(s.Where, os.FileMode(s.DirectoryMode), req.flags&unix.MS_BIND != 0 && isRegularFile(req.what)); err != nil {
		return nil, err
	}
	if req.flags&unix.MS_BIND != 0 {
		return nil, req.mount(sys, s.Where)
	}
	if strings.HasPrefix(req.what, "/dev/") {
		// As mount(8), the table names the device, not the link it was
		// found by (/dev/vda1, not /dev/disk/by-partuuid/...).
		if real, err := filepath.EvalSymlinks(req.what); err == nil {
			req.what = real
		}
	}
	var loopDev *loopdev.Device
	if req.loop || isRegularFile(req.what) && isBlockFSType(req.fstype) {
		dev, err := loopdev.Attach(req.what, loopdev.Options{ReadOnly: req.flags&unix.MS_RDONLY != 0,
			Offset: req.loopOffset, SizeLimit: req.loopSizeLimit})
		if err != nil {
			return nil, err
		}
		// Autoclear: once the mount holds the device, closing this
		// descriptor leaves it to the mount; if the mount failed, the
		// device goes at once.
		loopDev = dev
		req.what = dev.Path
	}
	h, err := req.prepare(s)
	if h != nil && err == nil {
		h.loopDev = loopDev // held until the helper is done
		return h, nil
	}
	if err == nil {
		err = req.mount(sys, s.Where)
	}
	if loopDev != nil {
		loopDev.Close()
	}
	return nil, err
}

// prepare finds the file system type and a helper for it, or fills in
// what a kernel mount of the type needs.
func (req *mountRequest) prepare(s *unitfile.MountSection) (*mountHelper, error) {
	if req.fstype == "" || req.fstype == "auto" {
		t, err := probeFSType(req.what)
		if err != nil {
			return nil, err
		}
		req.fstype = t
	}
	if h := findMountHelper(req.helperDirs, req.fstype); h != nil {
		h.args = append(h.args, req.what, s.Where)
		if s.SloppyOptions {
			h.args = append(h.args, "-s")
		}
		h.args = append(h.args, "-n")
		if req.helperOptions != "" {
			h.args = append(h.args, "-o", req.helperOptions)
		}
		if h.subtype {
			h.args = append(h.args, "-t", req.fstype)
		}
		return h, nil
	}
	if strings.HasPrefix(req.fstype, "fuse") {
		return nil, fmt.Errorf("type %s needs a user-space mount helper: no mount.%s in %s", req.fstype, req.fstype, strings.Join(req.helperDirs, ", "))
	}
	if isNFS(req.fstype) {
		data, err := nfsAddrOption(req.what, req.data, s.Timeout)
		if err != nil {
			return nil, err
		}
		req.data = data
	}
	return nil, nil
}

// blockFSTypes are the file systems that live on a block device: a
// regular file named as what with one of these types (or none) is
// mounted through a loop device, as mount(8) does; a file given to
// another type (a FUSE file system reading an archive) is passed as it
// is.
var blockFSTypes = []string{"", "auto", "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "msdos", "exfat", "ntfs", "ntfs3",
	"iso9660", "udf", "squashfs", "erofs", "f2fs", "cramfs", "romfs", "minix", "hfsplus", "jfs", "reiserfs", "nilfs2"}

func isBlockFSType(t string) bool { return slices.Contains(blockFSTypes, t) }

// mount makes the mount(2) calls of the request.
func (req *mountRequest) mount(sys mountSyscalls, where string) error {
	first := req.flags
	if req.remountBind {
		first &= unix.MS_BIND | unix.MS_REC
	}
	err := sys.Mount(req.what, where, req.fstype, first, req.data)
	if err != nil && req.sloppy && req.data != "" && errors.Is(err, unix.EINVAL) {
		// sloppy-options: a file system that refuses an option it does
		// not know still mounts, without the data options.
		err = sys.Mount(req.what, where, req.fstype, first, "")
	}
	if err != nil {
		return err
	}
	if req.remountBind {
		if err := sys.Mount("", where, "", req.flags|unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("remount bind mount with its flags: %w", err)
		}
	}
	if req.propagation != 0 {
		if err := sys.Mount("", where, "", req.propagation, ""); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	return nil
}

// explainMountError turns the kernel's terse answers into what to check.
func explainMountError(err error, s *unitfile.MountSection) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("unknown file system type %q (not in /proc/filesystems; is its module loaded?): %w", s.FSType, err)
	case errors.Is(err, unix.ENOTBLK):
		return fmt.Errorf("%s is not a block device: %w", s.What, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s or %s does not exist: %w", s.What, s.Where, err)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("mount point %s is not a directory: %w", s.Where, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("bad superblock or options %q for type %s: %w", s.Options, s.FSType, err)
	}
	return err
}

// probeFSType reads the superblock of what to find its file system type.
func probeFSType(what string) (string, error) {
	f, err := os.Open(what)
	if err != nil {
		return "", fmt.Errorf("no type set and cannot probe %s: %w", what, err)
	}
	defer f.Close()
	id, err := blkid.ProbeIdentity(f)
	if err != nil || id.Type == "" {
		return "", fmt.Errorf("no type set and the file system on %s is not recognised: set type", what)
	}
	return id.Type, nil
}

func isRegularFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// prepareMountPoint creates the mount point (and its parents) with mode,
// and refuses one that is not a directory (unless a file is bind-mounted
// onto a file) or is a symbolic link, as systemd does.
func prepareMountPoint(where string, mode os.FileMode, fileBind bool) error {
	fi, err := os.Lstat(where)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if fileBind {
			if err := os.MkdirAll(path.Dir(where), mode); err != nil {
				return fmt.Errorf("create parent of mount point: %w", err)
			}
			f, err := os.OpenFile(where, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("create mount point file: %w", err)
			}
			return f.Close()
		}
		if err := os.MkdirAll(where, mode); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("mount point: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("mount point %s is a symbolic link: name the real path", where)
	case fi.IsDir():
		if fileBind {
			return fmt.Errorf("mount point %s is a directory, but what is a file", where)
		}
		return nil
	case fileBind && fi.Mode().IsRegular():
		return nil
	}
	return fmt.Errorf("mount point %s is not a directory (it is a %s)", where, fileKind(fi.Mode()))
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return m.Type().String()
}

// MountOptions are mount options split as mount(8) splits them.
type MountOptions struct {
	// Flags are the MS_* flags for mount(2).
	Flags uintptr
	// Data are the options passed to the file system, in order.
	Data []string
	// Propagation is MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE,
	// maybe with MS_REC.
	Propagation uintptr
	// UserSpace are the options for mount programs and generators
	// (nofail, _netdev, x-systemd.*, ...), dropped before the kernel.
	UserSpace []string
	// Loop is set by the loop option, which needs a loop device set up.
	Loop bool
}

// mountFlagTable maps the flag options to what they set and clear.
var mountFlagTable = map[string]struct {
	set, clear uintptr
}{
	"ro": {unix.MS_RDONLY, 0}, "rw": {0, unix.MS_RDONLY},
	"nosuid": {unix.MS_NOSUID, 0}, "suid": {0, unix.MS_NOSUID},
	"nodev": {unix.MS_NODEV, 0}, "dev": {0, unix.MS_NODEV},
	"noexec": {unix.MS_NOEXEC, 0}, "exec": {0, unix.MS_NOEXEC},
	"sync": {unix.MS_SYNCHRONOUS, 0}, "async": {0, unix.MS_SYNCHRONOUS},
	"dirsync": {unix.MS_DIRSYNC, 0},
	"remount": {unix.MS_REMOUNT, 0},
	"mand":    {unix.MS_MANDLOCK, 0}, "nomand": {0, unix.MS_MANDLOCK},
	"noatime": {unix.MS_NOATIME, 0}, "atime": {0, unix.MS_NOATIME},
	"nodiratime": {unix.MS_NODIRATIME, 0}, "diratime": {0, unix.MS_NODIRATIME},
	"relatime": {unix.MS_RELATIME, 0}, "norelatime": {0, unix.MS_RELATIME},
	"strictatime": {unix.MS_STRICTATIME, 0}, "nostrictatime": {0, unix.MS_STRICTATIME},
	"lazytime": {unix.MS_LAZYTIME, 0}, "nolazytime": {0, unix.MS_LAZYTIME},
	"silent": {unix.MS_SILENT, 0}, "loud": {0, unix.MS_SILENT},
	"bind": {unix.MS_BIND, 0}, "rbind": {unix.MS_BIND | unix.MS_REC, 0},
	"move": {unix.MS_MOVE, 0},
}

var propagationTable = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// userSpaceOptions are consumed by mount programs, never the kernel.
var userSpaceOptions = []string{"defaults", "auto", "noauto", "nofail", "_netdev", "user", "nouser", "users",
	"owner", "group", "sw", "nobootwait", "bg", "fg"}

// ParseMountOptions splits a comma-separated option string. Commas inside
// double quotes (an SELinux context="a,b") do not split.
func ParseMountOptions(s string) (MountOptions, error) {
	var o MountOptions
	for _, opt := range splitOptions(s) {
		if opt == "" {
			continue
		}
		if f, ok := mountFlagTable[opt]; ok {
			o.Flags = o.Flags&^f.clear | f.set
			continue
		}
		if p, ok := propagationTable[opt]; ok {
			o.Propagation = p
			continue
		}
		name, _, _ := strings.Cut(opt, "=")
		switch {
		case slices.Contains(userSpaceOptions, name), strings.HasPrefix(name, "x-"), strings.HasPrefix(name, "X-"),
			name == "comment", name == "helper", name == "uhelper":
			o.UserSpace = append(o.UserSpace, opt)
		case name == "loop" || name == "offset" || name == "sizelimit":
			o.Loop = true
			o.UserSpace = append(o.UserSpace, opt)
		case strings.ContainsRune(opt, 0):
			return o, fmt.Errorf("option %q contains a NUL byte", opt)
		default:
			o.Data = append(o.Data, opt)
		}
	}
	if o.Flags&unix.MS_MOVE != 0 {
		return o, fmt.Errorf("option move is not for mount units")
	}
	return o, nil
}

func splitOptions(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}
