package pid1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	vdbus "vigil/dbus"
	"vigil/init/kmod"
	"vigil/observer"
	"vigil/observer/audit"
	"vigil/observer/control"
	"vigil/observer/fanotify"
	"vigil/observer/guests"
	"vigil/observer/mountinfo"
	"vigil/observer/process"
	"vigil/units"
	"vigil/units/api"
	"vigil/units/cgroup"
	"vigil/units/fstab"
	"vigil/units/unitfile"
)

// Config is what a manager needs to run.
type Config struct {
	// UnitPaths are searched in order (earlier wins).
	UnitPaths []string
	// RuntimeDir holds the control socket and runtime state.
	RuntimeDir string
	// StateDir holds logs.
	StateDir string
	// ControlSocket defaults to RuntimeDir/control.sock.
	ControlSocket string
	// DefaultTarget is started at boot (default.target if empty).
	DefaultTarget string
	// Wants are wanted by DefaultTarget, so they start in the boot's
	// transaction (vigil.wants=).
	Wants []string
	// Console receives status lines; nil for none.
	Console io.Writer
	Color   bool
	// Logf is the manager's own log; nil writes to stderr.
	Logf func(format string, args ...any)
	// Log, if set, receives the lines whose level their code decided
	// (units.Options.Log and the manager's own); Logf then gets only the
	// lines of sources that log without a level.
	Log func(level units.Level, line string)
	// KernelCommandLine and Virtualization feed conditions.
	KernelCommandLine string
	Virtualization    string
	// OnDefaultTarget is called when the boot job finishes.
	OnDefaultTarget func(target, result string)
	// Shutdown carries out the final stage after every unit has stopped
	// (PID 1 powers off; a plain manager just returns).
	Shutdown func(action string)
	// CgroupRoot is the delegated cgroup2 directory of a manager that is
	// not PID 1; empty means its own cgroup when that is delegated, else
	// none (with one warning). NoCgroups turns cgroups off.
	CgroupRoot string
	NoCgroups  bool
	// ObserverSocket is where outside guests connect; default
	// RuntimeDir/observer.sock.
	ObserverSocket string
	// BusPrivate is the peer-to-peer D-Bus socket (PID 1:
	// /run/systemd/private); default RuntimeDir/systemd-private.
	BusPrivate string
	// SystemBus makes the manager own org.freedesktop.systemd1 on the
	// system bus whenever a dbus-daemon runs.
	SystemBus bool
	// Devices turns on device events: the kernel's uevent socket,
	// coldplug, module autoloading, /dev/disk links and device rules,
	// device units and [trigger] uevent units. PID 1 sets it; a manager
	// beside another init must not touch /dev.
	Devices bool
	// Fstab is the file system table turned into mount and swap units at
	// start and daemon-reload (units/fstab); PID 1: /etc/fstab; empty:
	// none (a manager beside another init leaves fstab to it).
	Fstab string
	// AuditConfig is the audit guest's policy file (PID 1:
	// /etc/vigil/audit.toml); empty: no auditing (init/audit.go).
	AuditConfig string
}

// Manager is a running Vigil manager.
type Manager struct {
	cfg     Config
	loop    *observer.Loop
	units   *units.Manager
	control *control.Server
	guests  *guests.Server
	files   *fanotify.Source // file access holds; nil when unavailable
	audit   *audit.Auditor
	bus     *vdbus.Server
	logs    *logStore
	// mounts feeds the mount table to mount and automount units.
	mounts *mountinfo.Watcher

	mu       sync.Mutex
	shutdown string
	ctx      context.Context
	cancel   context.CancelFunc
}

// DefaultUnitPaths are the system's unit directories, earlier wins.
func DefaultUnitPaths() []string {
	return []string{"/etc/vigil/units", "/run/vigil/units", "/usr/lib/vigil/units"}
}

// Start builds everything and boots the default target; Run then serves
// until a shutdown request or ctx ends.
func Start(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.RuntimeDir == "" {
		return nil, fmt.Errorf("no runtime directory")
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.RuntimeDir, "state")
	}
	if cfg.ControlSocket == "" {
		cfg.ControlSocket = filepath.Join(cfg.RuntimeDir, "control.sock")
	}
	if cfg.DefaultTarget == "" {
		cfg.DefaultTarget = "default.target"
	}
	if cfg.ObserverSocket == "" {
		cfg.ObserverSocket = filepath.Join(cfg.RuntimeDir, "observer.sock")
	}
	if cfg.BusPrivate == "" {
		cfg.BusPrivate = filepath.Join(cfg.RuntimeDir, "systemd-private")
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "vigil: "+format+"\n", args...) }
	}
	// warnf is for this file's own lines, all of them warnings.
	warnf := func(format string, args ...any) {
		if cfg.Log != nil {
			cfg.Log(units.LevelWarning, fmt.Sprintf(format, args...))
			return
		}
		logf(format, args...)
	}
	if err := closeInheritedOnExec(); err != nil {
		warnf("cannot keep inherited file descriptors from units: %v", err)
	}
	// The manager's life is its own: the caller's ctx ends it through Run,
	// with an ordered stop, not by pulling the loop away.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	vm := &Manager{cfg: cfg, ctx: ctx, cancel: cancel}
	vm.loop = observer.New(observer.Options{Logf: logf})
	if _, err := process.Start(ctx, vm.loop); err != nil {
		cancel()
		return nil, err
	}
	store, err := openLogStore(filepath.Join(cfg.StateDir, "log"), cfg.Console)
	if store == nil {
		cancel()
		return nil, fmt.Errorf("log store: %w", err)
	}
	if err != nil {
		warnf("log store: %v (keeping logs in memory only)", err)
	}
	vm.logs = store
	spec := unitfile.DefaultContext()
	spec.RuntimeDir = cfg.RuntimeDir
	var tree *cgroup.Tree
	if !cfg.NoCgroups && os.Getpid() != 1 {
		t, warning, err := cgroup.ForManager(cfg.CgroupRoot)
		if err != nil {
			cancel()
			return nil, err
		}
		if warning != "" {
			warnf("%s", warning)
		}
		tree = t
	}
	vm.audit = newAuditor(vm.loop, cfg, logf)
	files, filesErr := fanotify.New(fanotify.Options{Loop: vm.loop, Logf: logf, Inline: auditInline(vm.audit), InlineLater: auditInlineLater(vm.audit), Deadline: fileHoldBackstop})
	var fileAccess units.FileAccess
	var guestFiles guests.FileAccess
	if filesErr != nil {
		warnf("%v (path units watch with inotify only; nothing can hold file accesses)", filesErr)
	} else {
		vm.files, fileAccess, guestFiles = files, files, files
	}
	m, err := units.New(vm.loop, units.Options{
		Cgroups:           tree,
		NoCgroups:         cfg.NoCgroups || (tree == nil && os.Getpid() != 1),
		UnitPaths:         cfg.UnitPaths,
		RuntimeDir:        cfg.RuntimeDir,
		StateDir:          cfg.StateDir,
		Console:           cfg.Console,
		Color:             cfg.Color,
		Logf:              logf,
		Log:               cfg.Log,
		Logs:              store,
		KernelCommandLine: cfg.KernelCommandLine,
		Virtualization:    cfg.Virtualization,
		Specifiers:        spec,
		Devices:           deviceOptions(cfg.Devices),
		Generators:        generators(cfg),
		FileAccess:        fileAccess,
		Spawner:           spawnerFor(vm.files, logf),
	})
	if err != nil {
		cancel()
		if vm.files != nil {
			vm.files.Close()
		}
		return nil, err
	}
	vm.units = m
	// Mount and automount units follow the mount table (units/mount.go).
	if vm.mounts, err = mountinfo.Watch(vm.loop, mountinfo.Options{Logf: logf}); err != nil {
		warnf("mount table: %v (mount units will not see mounts)", err)
	}
	m.SetLogReader(store)
	m.SetShutdown(vm.requestShutdown)
	srv, err := control.Listen(vm.loop, cfg.ControlSocket, control.Options{
		ReadOnlyMethods: []string{api.MethodList, api.MethodStatus, api.MethodShow, api.MethodCat,
			api.MethodIsActive, api.MethodIsFailed, api.MethodIsEnabled, api.MethodListJobs,
			api.MethodLogs, api.MethodPing},
		Logf: logf,
	})
	if err != nil {
		cancel()
		if vm.files != nil {
			vm.files.Close()
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	vm.control = srv
	if vm.guests, err = guests.Listen(vm.loop, cfg.ObserverSocket, guests.Options{Logf: logf,
		FileAccess: guestFiles, FileAccessError: filesErr}); err != nil {
		warnf("observer socket: %v (outside guests cannot connect)", err)
	}
	if vm.bus, err = vdbus.NewServer(vdbus.NewUnitsAdapter(vm.loop, m), vdbus.Options{Logf: logf}); err != nil {
		warnf("D-Bus: %v", err)
	} else {
		if err := vm.bus.ListenPrivate(cfg.BusPrivate); err != nil {
			warnf("D-Bus private socket: %v", err)
		}
		if cfg.SystemBus {
			vm.loop.Do(vm.joinBusWhenUp)
		}
	}
	vm.loop.Do(vm.shutdownWhenTargetActive)
	vm.loop.Do(func() { vm.startAudit(vm.files, filesErr) })
	vm.loop.Do(vm.boot)
	return vm, nil
}

// shutdownWhenTargetActive takes the last step of a shutdown that began
// by starting poweroff.target, reboot.target or halt.target as a unit:
// without logind, "systemctl poweroff" sends StartUnit("poweroff.target",
// "replace-irreversibly"). systemd's targets pull in
// systemd-poweroff.service for that step; here PID 1 takes it when the
// target becomes active.
func (vm *Manager) shutdownWhenTargetActive() {
	vm.units.WatchUnits(func(u *units.Unit) {
		var action string
		switch u.Name {
		case "poweroff.target":
			action = "poweroff"
		case "reboot.target":
			action = "reboot"
		case "halt.target":
			action = "halt"
		default:
			return
		}
		if state, _ := u.Active(); state == units.StateActive {
			vm.loop.Do(func() { vm.requestShutdown(action) })
		}
	})
}

// generators are the unit generators the configuration asks for.
func generators(cfg Config) []units.Generator {
	if cfg.Fstab == "" {
		return nil
	}
	return []units.Generator{fstab.Generator(fstab.Options{Path: cfg.Fstab})}
}

// deviceOptions gives PID 1's device handling, or nil when off.
func deviceOptions(on bool) *units.DeviceOptions {
	if !on {
		return nil
	}
	loader := &kmod.Loader{}
	return &units.DeviceOptions{
		Listen:           true,
		Coldplug:         true,
		ProbeFilesystems: true,
		ManageNodes:      true,
		// Most devices have no module in the image (or need none): that
		// is not worth a log line per device.
		ResolveModule: func(alias string) ([]string, error) {
			mods, err := loader.Resolve(alias)
			if errors.Is(err, kmod.ErrNotFound) {
				return nil, nil
			}
			return mods, err
		},
		LoadModule: loader.Load,
	}
}

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC of close_range(2) (Linux 5.11).
const closeRangeCloexec = 1 << 2

// closeInheritedOnExec marks every descriptor above stderr close-on-exec.
// A manager started from a shell or a test harness inherits whatever its
// parent leaked (pipes, terminals); units must get only what the unit says,
// and a leaked pipe held open by a daemon would keep its reader waiting
// forever. The manager's own descriptors are close-on-exec already (Go
// opens them so), which leaves exactly the inherited ones.
func closeInheritedOnExec() error {
	if err := unix.CloseRange(3, ^uint(0), closeRangeCloexec); err == nil {
		return nil
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// The directory's own descriptor is gone by now: EBADF is fine.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return fmt.Errorf("descriptor %d: %w", fd, err)
		}
	}
	return nil
}

// Units gives the unit manager; use it only on the loop goroutine.
func (vm *Manager) Units() *units.Manager { return vm.units }

// Loop gives the observer loop.
func (vm *Manager) Loop() *observer.Loop { return vm.loop }

func (vm *Manager) boot() {
	target := vm.cfg.DefaultTarget
	// vigil.wants= units join the boot's one transaction as wants of the
	// target, as systemd's debug generator links systemd.wants= units
	// into the target's .wants/.
	if len(vm.cfg.Wants) > 0 {
		if err := vm.units.AddWants(target, vm.cfg.Wants); err != nil {
			vm.units.LogAt(units.LevelErr, "boot: cannot add wants %v to %s: %v", vm.cfg.Wants, target, err)
		}
	}
	j, err := vm.units.Enqueue(target, api.JobStart, api.ModeReplace)
	if err != nil {
		vm.units.LogAt(units.LevelErr, "boot: cannot start %s: %v", target, err)
		if vm.cfg.OnDefaultTarget != nil {
			vm.cfg.OnDefaultTarget(target, api.ResultFailed)
		}
		return
	}
	j.OnDone(func(j *units.Job) {
		if vm.cfg.OnDefaultTarget != nil {
			vm.cfg.OnDefaultTarget(j.Unit.Name, j.Result)
		}
	})
}

// requestShutdown runs on the loop: it isolates the shutdown target, and
// when every unit has stopped, ends Run with the action.
func (vm *Manager) requestShutdown(action string) error {
	switch action {
	case "poweroff", "reboot", "halt", "exit":
	default:
		return fmt.Errorf("unknown shutdown action %q (poweroff, reboot, halt)", action)
	}
	vm.mu.Lock()
	already := vm.shutdown != ""
	vm.shutdown = action
	vm.mu.Unlock()
	if already {
		return nil
	}
	target := action + ".target"
	if action == "exit" {
		target = "shutdown.target"
	}
	vm.units.ShuttingDown()
	j, err := vm.units.Enqueue(target, api.JobStart, api.ModeIsolate)
	if err != nil {
		vm.units.LogAt(units.LevelWarning, "shutdown: %v; stopping units directly", err)
		vm.finishShutdown()
		return nil
	}
	j.OnDone(func(*units.Job) { vm.finishShutdown() })
	return nil
}

func (vm *Manager) finishShutdown() {
	// Let the loop drain the final replies before it stops.
	vm.loop.AfterFunc(20*time.Millisecond, vm.cancel)
}

// Run serves until shutdown or ctx ends, and returns the shutdown action
// ("" when ctx ended).
func (vm *Manager) Run(ctx context.Context) string {
	go func() {
		select {
		case <-ctx.Done():
			// A stop from outside: stop every unit in order first.
			vm.loop.Do(func() { vm.requestShutdown("exit") })
		case <-vm.ctx.Done():
		}
	}()
	vm.loop.Run(vm.ctx)
	vm.control.Close()
	vm.units.StopDevices()
	vm.units.Close()
	if vm.mounts != nil {
		vm.mounts.Close()
	}
	if vm.guests != nil {
		vm.guests.Close()
	}
	vm.stopAudit()
	if vm.files != nil {
		// Accessors still held are let go: nobody is left to decide.
		vm.files.Close()
	}
	if vm.bus != nil {
		vm.bus.Close()
	}
	if vm.logs != nil {
		vm.logs.Close()
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.shutdown
}

// joinBusWhenUp connects to the system bus once the unit serving it is
// active, as systemd does. Connecting earlier would itself start a
// socket-activated bus (and the boot would wait on it) just for PID 1.
func (vm *Manager) joinBusWhenUp() {
	joined := false
	join := func(u *units.Unit) {
		if joined || (u.Name != "dbus.service" && u.Name != "dbus-broker.service") {
			return
		}
		if state, _ := u.Active(); state == units.StateActive {
			joined = true
			go vm.bus.ServeSystemBus(vm.ctx, "")
		}
	}
	vm.units.WatchUnits(join)
	for _, u := range vm.units.Units() {
		join(u)
	}
}
