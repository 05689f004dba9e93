package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"vigil/observer"
	"vigil/observer/uevent"
	"vigil/observer/uevent/blkid"
	"vigil/observer/uevent/devnode"
	"vigil/units/api"
	"vigil/units/unitfile"
)

// Device events reach the manager in two stages. The kernel's uevents
// arrive on the raw source (uevent.Listen, "uevent"); the supervisor's
// intake observer hands each one to a worker goroutine, which does the
// slow work udev does (load the driver for MODALIAS, read the file
// system's superblock, keep /dev/disk links, apply device rules) off the
// loop, and posts the result, with ID_FS_TYPE, ID_FS_UUID, ID_FS_LABEL and
// DEVLINKS added, to the "device" source. Device units and [trigger]
// units observe that second source, so a trigger can match a file
// system's label and a unit bound to a device sees it only once its links
// exist.

// DeviceSource names the source of processed device events.
const DeviceSource = "device"

// defaultDeviceJobTimeout is systemd's DefaultDeviceTimeoutSec.
const defaultDeviceJobTimeout = 90 * time.Second

// deviceQueue bounds the raw events waiting for the worker and the
// processed events waiting for the loop.
const deviceQueue = 4096

// devicePostPatience is how long the worker retries posting a processed
// event to a full queue before it drops it (and counts the drop): a burst
// such as coldplug must not lose events, and a stuck loop must not stall
// the worker forever.
const devicePostPatience = 2 * time.Second

// DeviceOptions turn on device events in the manager.
type DeviceOptions struct {
	// Listen opens the kernel's uevent socket (uevent.Listen) on the
	// manager's loop. Without it the manager follows what others post to
	// the source named SourceName (tests do).
	Listen bool
	// SourceName is the raw uevent source's name; default "uevent".
	SourceName string
	// Coldplug synthesises "add" for every device under SysRoot when the
	// manager starts (default "/sys"), so devices present before Vigil
	// are seen as hot-plugged ones are.
	Coldplug bool
	SysRoot  string
	// ProbeFilesystems reads the superblock of block devices on add and
	// change and sets ID_FS_TYPE, ID_FS_UUID and ID_FS_LABEL.
	ProbeFilesystems bool
	// ManageNodes keeps /dev/disk/by-uuid and by-label links and applies
	// the device rules (RulesPath, default /etc/vigil/devices.toml). Only
	// PID 1 should: a test manager must not touch the host's /dev.
	ManageNodes bool
	// DevRoot stands for "/" in device node paths; default "/".
	DevRoot   string
	RulesPath string
	// ResolveModule and LoadModule load the driver of a device added with
	// a MODALIAS and no driver (kmod.Loader's Resolve and Load). Nil: no
	// autoloading.
	ResolveModule func(alias string) ([]string, error)
	LoadModule    func(name string) error
	// JobTimeout bounds a start job on a device unit whose device is not
	// there, unless the unit sets job-timeout; default 90 s.
	JobTimeout time.Duration
	// UnitSubsystems are the subsystems whose devices get units as they
	// appear (systemd's TAG+="systemd"); default block and net. A device
	// of another subsystem gets a unit when something names it.
	UnitSubsystems []string
}

// DeviceStats count what the device pipeline did.
type DeviceStats struct {
	Processed       uint64        // events posted to the device source
	Dropped         uint64        // raw events lost to a full worker queue, or processed ones to a full loop
	Coldplugged     int           // devices synthesised by the last coldplug
	ColdplugTime    time.Duration // how long the last coldplug took, including processing
	ModulesLoaded   []string      // modules autoloaded, in order
	Errors          uint64        // autoload, probe, link and rule errors (logged)
	Listener        uevent.Stats  // the kernel socket's own counts (zero without Listen)
	ReceiveBuffer   int           // the kernel socket's granted receive buffer
	ColdplugRunning bool
}

// devices is the manager's device state; it exists even when device
// events are off, so [trigger] units still register (and wait for events
// nobody posts).
type devices struct {
	opts    *DeviceOptions
	enabled bool

	listener *uevent.Listener
	source   *observer.Source
	rules    *devnode.Rules

	// present maps every device unit name seen to the sysfs path of its
	// device; byPath is the inverse. Both live on the loop.
	present map[string]string
	byPath  map[string][]string
	// graphDirty asks for one rebuild of the dependency graph after a
	// batch of device units appeared.
	graphDirty bool

	// triggers are the observers registered for [trigger] uevent, by unit;
	// triggerFilters their filters, compiled, to find which units a
	// device's event pulled in.
	triggers       map[string][]observer.ObserverID
	triggerFilters map[string][]observer.Filter
	// wants are, by device unit, the units its events triggered since it
	// appeared: the device unit's run-time Wants (runtimewants.go), as
	// udev's SYSTEMD_WANTS= gives them in systemd.
	wants map[string][]string

	// The worker's side.
	work      chan *uevent.Uevent
	stop      chan struct{}
	done      chan struct{}
	processed atomic.Uint64
	dropped   atomic.Uint64
	errors    atomic.Uint64

	// Loop side copies of the worker's results.
	coldplugged     int
	coldplugTime    time.Duration
	coldplugRunning bool
	modulesLoaded   []string
}

func newDevices(opts *DeviceOptions) *devices {
	d := &devices{present: map[string]string{}, byPath: map[string][]string{}, triggers: map[string][]observer.ObserverID{},
		triggerFilters: map[string][]observer.Filter{}, wants: map[string][]string{}}
	if opts == nil {
		return d
	}
	o := *opts
	if o.SourceName == "" {
		o.SourceName = "uevent"
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/"
	}
	if o.RulesPath == "" {
		o.RulesPath = devnode.DefaultRulesPath
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = defaultDeviceJobTimeout
	}
	if o.UnitSubsystems == nil {
		o.UnitSubsystems = []string{"block", "net"}
	}
	d.opts = &o
	d.enabled = true
	return d
}

// startDevices registers the device observers, opens the kernel socket and
// starts the worker (which coldplugs first). Called from New.
func (m *Manager) startDevices() error {
	d := m.devices
	if !d.enabled {
		return nil
	}
	o := d.opts
	if o.ManageNodes {
		rules, err := devnode.LoadRules(filepath.Join(o.DevRoot, o.RulesPath))
		switch {
		case err == nil:
			d.rules = rules
		case errors.Is(err, fs.ErrNotExist):
		default:
			// Rules with errors apply nothing; the devices still appear.
			m.warnf("%v", err)
			m.consoleLine(consoleWarn, "%v", err)
		}
	}
	d.source = m.loop.NewSource(DeviceSource, deviceQueue)
	d.work = make(chan *uevent.Uevent, deviceQueue)
	d.stop = make(chan struct{})
	d.done = make(chan struct{})
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "device intake",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{o.SourceName}}}},
		Notify: m.onRawUevent,
	}); err != nil {
		return err
	}
	if _, err := m.loop.Register(observer.Observer{
		Guest:  "supervisor",
		Name:   "device units",
		Filter: observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{DeviceSource}}}},
		Notify: m.onDeviceEvent,
	}); err != nil {
		return err
	}
	if o.Listen {
		l, err := uevent.Listen(m.loop, uevent.ListenOptions{SourceName: o.SourceName, Logf: m.warnf})
		if err != nil {
			return fmt.Errorf("device events: %w", err)
		}
		d.listener = l
	}
	if o.Coldplug {
		d.coldplugRunning = true
	}
	go m.deviceWorker(o.Coldplug)
	return nil
}

// StopDevices closes the kernel socket and ends the device worker. The
// loop must not be waiting on the worker (call it after the loop stopped
// or from another goroutine).
func (m *Manager) StopDevices() {
	d := m.devices
	if d == nil || !d.enabled || d.stop == nil {
		return
	}
	if d.listener != nil {
		d.listener.Close()
	}
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	<-d.done
}

// DeviceStats reports the device pipeline's counts. Call it on the loop.
func (m *Manager) DeviceStats() DeviceStats {
	d := m.devices
	st := DeviceStats{
		Processed: d.processed.Load(), Dropped: d.dropped.Load(), Errors: d.errors.Load(),
		Coldplugged: d.coldplugged, ColdplugTime: d.coldplugTime, ColdplugRunning: d.coldplugRunning,
		ModulesLoaded: slices.Clone(d.modulesLoaded),
	}
	if d.listener != nil {
		st.Listener = d.listener.Stats()
		st.ReceiveBuffer = d.listener.ReceiveBufferSize()
	}
	return st
}

// onRawUevent runs on the loop for every kernel uevent: it hands the event
// to the worker without blocking.
func (m *Manager) onRawUevent(ev *observer.Event) {
	d := m.devices
	var u *uevent.Uevent
	switch {
	case ev.Kind == "resync":
		// The kernel or the queue lost events: walk /sys again (nil asks
		// the worker for a coldplug).
	default:
		p, ok := ev.Payload.(*uevent.Uevent)
		if !ok {
			return // an event posted by hand without a uevent payload
		}
		u = p
	}
	select {
	case d.work <- u:
	default:
		d.dropped.Add(1)
	}
}

func (m *Manager) deviceWorker(coldplug bool) {
	d := m.devices
	defer close(d.done)
	if coldplug {
		m.coldplug()
	}
	for {
		select {
		case <-d.stop:
			return
		case u := <-d.work:
			if u == nil {
				m.warnf("device events were lost; walking /sys again")
				m.coldplug()
				continue
			}
			m.processUevent(u)
		}
	}
}

func (m *Manager) coldplug() {
	d := m.devices
	start := time.Now()
	n, err := uevent.Coldplug(d.opts.SysRoot, func(u *uevent.Uevent) { m.processUevent(u) })
	took := time.Since(start)
	if err != nil {
		d.errors.Add(1)
		m.warnf("%v", err)
	}
	m.loop.Do(func() {
		d.coldplugged, d.coldplugTime, d.coldplugRunning = n, took, false
		m.debugf("coldplug: %d devices in %v", n, took.Round(time.Millisecond))
	})
}

// processUevent does udev's work for one event, on the worker goroutine,
// and posts the result to the device source.
func (m *Manager) processUevent(raw *uevent.Uevent) {
	d := m.devices
	o := d.opts
	u := *raw
	// The raw event's Env is shared with observers of the raw source: the
	// processed event gets its own.
	u.Env = make(map[string]string, len(raw.Env)+4)
	for k, v := range raw.Env {
		u.Env[k] = v
	}
	if o.ResolveModule != nil && o.LoadModule != nil {
		loaded, err := uevent.Autoload(&u, o.ResolveModule, o.LoadModule)
		if err != nil {
			d.errors.Add(1)
			m.warnf("%v", err)
		}
		if len(loaded) > 0 {
			m.infof("device %s: loaded module %s for %s", u.DevPath, strings.Join(loaded, " "), u.Modalias)
			m.loop.Do(func() { d.modulesLoaded = append(d.modulesLoaded, loaded...) })
		}
	}
	node := u.DevNode()
	if u.Subsystem == "block" && node != "" {
		switch u.Action {
		case "add", "change":
			var links []devnode.Link
			if o.ProbeFilesystems || o.ManageNodes {
				if id, ok := m.probeFilesystem(node); ok {
					if id.Type != "" {
						u.Env["ID_FS_TYPE"] = id.Type
					}
					if id.UUID != "" {
						u.Env["ID_FS_UUID"] = id.UUID
					}
					if id.Label != "" {
						u.Env["ID_FS_LABEL"] = id.Label
					}
					links = devnode.Links(node, id)
				}
			}
			links = append(links, devnode.PathLinks(node, u.DevPath, u.Env)...)
			if o.ProbeFilesystems || o.ManageNodes {
				part, err := devnode.ProbePartition(o.SysRoot, o.DevRoot, node, u.DevPath, u.Env)
				if err != nil {
					m.warnf("device %s: %v", node, err)
				}
				links = append(links, part...)
			}
			if o.ManageNodes {
				if err := devnode.Apply(o.DevRoot, links); err != nil {
					d.errors.Add(1)
					m.warnf("device %s: %v", node, err)
				}
				if err := devnode.Prune(o.DevRoot, node, links); err != nil {
					d.errors.Add(1)
					m.warnf("device %s: %v", node, err)
				}
				if len(links) > 0 {
					paths := make([]string, len(links))
					for i, l := range links {
						paths[i] = l.Path
					}
					u.Env["DEVLINKS"] = strings.Join(paths, " ")
				}
			}
		case "remove":
			if o.ManageNodes {
				if err := devnode.Prune(o.DevRoot, node, nil); err != nil {
					d.errors.Add(1)
					m.warnf("device %s: %v", node, err)
				}
			}
		}
	}
	if o.ManageNodes && d.rules != nil {
		if err := d.rules.Apply(&u, o.DevRoot); err != nil {
			d.errors.Add(1)
			m.warnf("%v", err)
		}
	}
	ev := uevent.Event(&u)
	deadline := time.Now().Add(devicePostPatience)
	for !d.source.Post(ev) {
		if time.Now().After(deadline) {
			d.dropped.Add(1)
			return
		}
		select {
		case <-d.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	d.processed.Add(1)
}

// probeFilesystem identifies the file system on a block device node.
// Empty devices, partition tables and media-less drives give ok false.
func (m *Manager) probeFilesystem(node string) (blkid.Identity, bool) {
	f, err := os.Open(filepath.Join(m.devices.opts.DevRoot, node))
	if err != nil {
		return blkid.Identity{}, false
	}
	defer f.Close()
	id, err := blkid.ProbeIdentity(f)
	if err != nil {
		if !errors.Is(err, blkid.ErrUnknown) {
			m.warnf("probe %s: %v", node, err)
		}
		return blkid.Identity{}, false
	}
	return id, true
}

// onDeviceEvent runs on the loop for every processed device event: device
// units appear, change and disappear with it.
func (m *Manager) onDeviceEvent(ev *observer.Event) {
	u, ok := ev.Payload.(*uevent.Uevent)
	if !ok {
		return
	}
	d := m.devices
	old := d.byPath[u.DevPath]
	var names []string
	if u.Action != "remove" {
		names = uevent.UnitNames(u)
	}
	for _, name := range old {
		if !slices.Contains(names, name) {
			m.unplugDevice(name, u.DevPath)
		}
	}
	if len(names) == 0 {
		delete(d.byPath, u.DevPath)
	} else {
		d.byPath[u.DevPath] = names
	}
	eager := slices.Contains(d.opts.UnitSubsystems, u.Subsystem)
	for _, name := range names {
		m.plugDevice(name, u.DevPath, eager)
	}
	m.noteTriggerWants(ev, names)
	// A renamed device (a network interface getting its final name)
	// leaves its old names behind.
	if from := u.Env["DEVPATH_OLD"]; u.Action == "move" && from != "" && from != u.DevPath {
		for _, name := range d.byPath[from] {
			if !slices.Contains(names, name) {
				m.unplugDevice(name, from)
			}
		}
		delete(d.byPath, from)
	}
	if d.graphDirty {
		d.graphDirty = false
		m.rebuildGraph()
	}
}

func (m *Manager) plugDevice(name, devpath string, create bool) {
	d := m.devices
	d.present[name] = devpath
	u := m.units[name]
	if u == nil {
		if !create {
			return
		}
		u = m.newDeviceUnit(name)
		d.graphDirty = true
	}
	if dev, ok := u.behaviour.(*device); ok {
		dev.plug(devpath)
	}
}

func (m *Manager) unplugDevice(name, devpath string) {
	d := m.devices
	if d.present[name] != devpath {
		return // the name moved to another device meanwhile
	}
	delete(d.present, name)
	if len(d.wants[name]) > 0 {
		delete(d.wants, name)
		d.graphDirty = true
	}
	if u := m.units[name]; u != nil {
		if dev, ok := u.behaviour.(*device); ok {
			dev.unplug()
		}
	}
}

// newDeviceUnit adds a device unit that has no file: device units exist
// because their device does (or because something names it), as in
// systemd.
func (m *Manager) newDeviceUnit(name string) *Unit {
	u := m.newUnit(name)
	u.LoadState = LoadLoaded
	u.Type = string(unitfile.TypeDevice)
	u.behaviour = newDevice(u)
	m.units[name] = u
	return u
}

// IgnoresIsolate: isolating a target never stops a device unit (systemd's
// default too); its file may still say otherwise.
func (d *device) IgnoresIsolate() bool {
	u := d.u
	return u.cfg == nil || u.cfg.Unit.IgnoreOnIsolate
}

// deviceJobTimeout is the job timeout of a device unit: its own
// job-timeout if it sets one, else the longest timeout of the mount units
// bound to it (mount.go), else the device default.
func (m *Manager) deviceJobTimeout(u *Unit) time.Duration {
	if u.cfg != nil && u.cfg.Unit.JobTimeout != unitfile.Infinity && u.cfg.Unit.JobTimeout > 0 {
		return u.cfg.Unit.JobTimeout
	}
	if d, ok := m.boundMountTimeout(u); ok {
		return d
	}
	if m.devices.opts != nil {
		return m.devices.opts.JobTimeout
	}
	return defaultDeviceJobTimeout
}

// device is the behaviour of .device units: active ("plugged") while the
// kernel has the device, inactive ("dead") otherwise. Starting one that is
// not there waits (activating, "waiting") until it appears or the job
// times out; stopping one that is there changes nothing, as in systemd:
// only the kernel unplugs devices.
type device struct {
	u *Unit
	// devpath is the sysfs path of the device while plugged, else "".
	devpath string
}

func newDevice(u *Unit) *device {
	dev := &device{u: u}
	if p, ok := u.m.devices.present[u.Name]; ok {
		dev.devpath = p
		u.active, u.sub = StateActive, "plugged"
		now := time.Now()
		u.activeEnter, u.inactiveExit, u.stateChange = now, now, now
	}
	return dev
}

func (dev *device) plug(devpath string) {
	dev.devpath = devpath
	dev.u.SetState(StateActive, "plugged")
}

// noteTriggerWants records, for the device units of a processed event,
// the [trigger] units the event matches: the device unit then wants them
// (systemctl show -p Wants, list-dependencies), until the device goes.
// The triggers' own observers start them (and startWantedOnPlug, mount.go,
// the device's other wants).
func (m *Manager) noteTriggerWants(ev *observer.Event, devUnits []string) {
	d := m.devices
	if len(devUnits) == 0 || len(d.triggerFilters) == 0 {
		return
	}
	var wanted []string
	for unit, filters := range d.triggerFilters {
		for i := range filters {
			if filters[i].Match(ev) {
				wanted = append(wanted, unit)
				break
			}
		}
	}
	slices.Sort(wanted)
	for _, name := range devUnits {
		for _, w := range wanted {
			if slices.Contains(d.wants[name], w) {
				continue
			}
			d.wants[name] = append(d.wants[name], w)
			if dev := m.units[name]; dev != nil && w != dev.Name {
				dev.addDep(Wants, w)
				if other := m.units[w]; other != nil {
					other.addDep(Wants.inverse(), dev.Name)
				}
			}
		}
	}
}

func (dev *device) unplug() {
	dev.devpath = ""
	if dev.u.active != StateInactive {
		dev.u.SetState(StateInactive, "dead")
	}
}

func (dev *device) Start() error {
	u := dev.u
	if dev.devpath != "" {
		u.SetState(StateActive, "plugged")
		return nil
	}
	j := u.job
	u.SetState(StateActivating, "waiting")
	if j != nil {
		// A job that ends without the device (timeout, cancel) leaves
		// the unit as it was: dead.
		j.OnDone(func(*Job) {
			if dev.devpath == "" && u.active == StateActivating {
				u.SetState(StateInactive, "dead")
			}
		})
	}
	return nil
}

// starting keeps a second start job from restarting the wait.
func (dev *device) starting() bool { return dev.u.active == StateActivating }

func (dev *device) Stop() error {
	u := dev.u
	if dev.devpath == "" {
		u.SetState(StateInactive, "dead")
		return nil
	}
	if j := u.job; j != nil && j.State == jobRunning {
		u.debugf("Device is plugged in; it stays active until it is removed.")
		u.m.finishJob(j, api.ResultDone, "")
	}
	return nil
}

func (dev *device) Reload() error          { return fmt.Errorf("%s cannot be reloaded", dev.u.Name) }
func (dev *device) CanReload() bool        { return false }
func (dev *device) Kill(string, int) error { return fmt.Errorf("%s has no processes", dev.u.Name) }
func (dev *device) ResetFailed()           {}
func (dev *device) Reconfigure()           {}
func (dev *device) Describe(*api.UnitStatus) {
}
func (dev *device) Properties() []api.Property {
	return []api.Property{{Name: "SysFSPath", Value: sysfsPath(dev.devpath)}}
}

func sysfsPath(devpath string) string {
	if devpath == "" {
		return ""
	}
	return "/sys" + devpath
}

// jobMessage words a device's status lines as systemd does ("Found
// device"), and keeps stop jobs quiet.
func (dev *device) jobMessage(jobType, event string) (string, bool) {
	switch event {
	case api.ResultDone:
		if jobType == api.JobStart {
			return "Found device " + dev.u.describe() + ".", true
		}
		return "", true
	case "starting", "stopping":
		return "", true
	}
	return "", false
}

// syncTriggers registers one observer with a start action for every
// [trigger] uevent table of every loaded unit, replacing those of the last
// scan.
func (m *Manager) syncTriggers() {
	d := m.devices
	for name, ids := range d.triggers {
		for _, id := range ids {
			m.loop.Unregister(id)
		}
		delete(d.triggers, name)
	}
	clear(d.triggerFilters)
	for _, u := range m.Units() {
		if u.cfg == nil || u.cfg.Trigger == nil || u.LoadState != LoadLoaded {
			continue
		}
		for i, t := range u.cfg.Trigger.Uevent {
			id, err := m.loop.Register(observer.Observer{
				Guest:   "supervisor",
				Name:    fmt.Sprintf("trigger %s uevent #%d", u.Name, i+1),
				Filter:  ueventTriggerFilter(t),
				Actions: []observer.Action{{Kind: api.JobStart, Args: map[string]string{"unit": u.Name}}},
			})
			if err != nil {
				u.errorf("Cannot register trigger: %v", err)
				continue
			}
			d.triggers[u.Name] = append(d.triggers[u.Name], id)
			// A copy of its own: Register compiles the observer's.
			if own := ueventTriggerFilter(t); own.Compile() == nil {
				d.triggerFilters[u.Name] = append(d.triggerFilters[u.Name], own)
			}
		}
	}
}

// ueventTriggerFilter turns a [trigger] uevent table into an observer
// filter over processed device events.
func ueventTriggerFilter(t unitfile.UeventTrigger) observer.Filter {
	terms := []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{DeviceSource}}}
	eq := func(key, value string) {
		if value != "" {
			terms = append(terms, observer.Term{Key: key, Op: observer.OpEq, Values: []string{value}})
		}
	}
	eq("kind", t.Action)
	eq("SUBSYSTEM", t.Subsystem)
	eq("DEVTYPE", t.DevType)
	eq("DEVNAME", t.DevName)
	keys := make([]string, 0, len(t.Env))
	for k := range t.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		terms = append(terms, observer.Term{Key: k, Op: observer.OpEq, Values: []string{t.Env[k]}})
	}
	return observer.Filter{Terms: terms}
}
