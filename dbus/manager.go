package dbus

import (
	"fmt"
	"time"
)

// Manager is what the D-Bus objects need of Vigil's manager. Every method
// may be called from any goroutine and must not block for long (the
// adapter runs each on the observer loop with a deadline).
type Manager interface {
	// Info describes the manager for its own object's properties.
	Info() (ManagerInfo, error)
	// ListUnits lists the loaded units, primary names only.
	ListUnits() ([]UnitStatus, error)
	// Unit describes a loaded unit (by name or alias); false if none is
	// loaded under that name. It must not load anything.
	Unit(name string) (UnitProps, bool, error)
	// LoadUnit loads a unit if needed (a missing one comes back with
	// LoadState not-found).
	LoadUnit(name string) (UnitProps, error)
	// UnitByPID names the unit a process belongs to.
	UnitByPID(pid uint32) (string, error)
	// UnitProcesses lists a unit's processes.
	UnitProcesses(name string) ([]Process, error)
	// Enqueue asks for a job (start, stop, restart, reload, try-restart,
	// reload-or-restart, reload-or-try-restart) in a job mode.
	Enqueue(name, jobType, mode string) (Job, error)
	// CancelJob cancels a pending job.
	CancelJob(id uint64) error
	// Jobs lists the pending jobs.
	Jobs() ([]Job, error)
	// Kill signals a unit's processes: whom is all, main or control.
	Kill(name, whom string, signal int32) error
	// ResetFailed forgets failures of the named units (all if none).
	ResetFailed(names []string) error
	// Reload re-reads the unit files (daemon-reload).
	Reload() error
	// Shutdown powers off, reboots, halts or exits the manager.
	Shutdown(action string) error
	// UnitFiles lists the known unit files with their states.
	UnitFiles() ([]UnitFile, error)
	// UnitFileState is is-enabled's answer ("" when there is no file).
	UnitFileState(name string) (string, error)
	// EnableUnitFiles and DisableUnitFiles change [Install] links.
	EnableUnitFiles(names []string) ([]InstallChange, error)
	DisableUnitFiles(names []string) ([]InstallChange, error)
	// DefaultTarget names the unit started at boot.
	DefaultTarget() (string, error)
	// Watch calls fn for every change the signals report, until stop is
	// called. fn is called on the manager's goroutine and must not block.
	Watch(fn func(Event)) (stop func(), err error)

	// ClearJobs cancels every pending job.
	ClearJobs() error
	// StartTransient makes a transient unit (systemd-run) and starts it.
	StartTransient(spec TransientSpec, mode string) (Job, error)
	// UnrefUnit drops the reference StartTransient took for AddRef.
	UnrefUnit(name string) error
	// SetUnitProperties sets resource properties (set-property's
	// KEY=VALUE over [resources]), in /run when runtime.
	SetUnitProperties(name string, runtime bool, assignments []string) error
	// MaskUnitFiles, UnmaskUnitFiles, ReenableUnitFiles and
	// SetDefaultTarget change links in the unit directories.
	MaskUnitFiles(names []string, runtime bool) ([]InstallChange, error)
	UnmaskUnitFiles(names []string, runtime bool) ([]InstallChange, error)
	ReenableUnitFiles(names []string) ([]InstallChange, error)
	SetDefaultTarget(name string) ([]InstallChange, error)
	// UnitFileLinks lists the links that lead to a unit.
	UnitFileLinks(name string, runtime bool) ([]string, error)
	// SetEnvironment changes the manager's environment for new processes:
	// unset first (NAME or NAME=VALUE), then set (NAME=VALUE).
	SetEnvironment(unset, set []string) error
	// UnitByControlGroup names the unit owning a cgroup.
	UnitByControlGroup(cgroup string) (string, error)

	// AbandonScope lets go of a running scope (scope.go).
	AbandonScope(name string) error
	// LinkUnitFiles links unit files outside the unit directories into
	// the install one; PresetUnitFiles and PresetAllUnitFiles apply the
	// preset policy (mode full, enable-only, disable-only); carries is
	// whether any unit had [install] settings. RevertUnitFiles removes
	// the administrator's drop-ins, masks and overrides.
	LinkUnitFiles(paths []string, runtime, force bool) ([]InstallChange, error)
	PresetUnitFiles(names []string, mode string) (carries bool, changes []InstallChange, err error)
	PresetAllUnitFiles(mode string) ([]InstallChange, error)
	RevertUnitFiles(names []string) ([]InstallChange, error)
	// AddDependencyUnitFiles links units into target's .wants (dep
	// "Wants") or .requires ("Requires") directory.
	AddDependencyUnitFiles(names []string, target, dep string, runtime, force bool) ([]InstallChange, error)
}

// ManagerInfo is the Manager object's state.
type ManagerInfo struct {
	Version        string
	SystemState    string // initializing, starting, running, degraded, stopping
	NNames         uint32
	NFailedUnits   uint32
	NJobs          uint32
	Virtualization string
	Environment    []string
	UnitPath       []string
	// Timestamps of boot phases; zero when unknown.
	UserspaceTimestamp                      time.Time
	FinishTimestamp                         time.Time
	DefaultTimeoutStart, DefaultTimeoutStop time.Duration
}

// UnitStatus is one row of ListUnits.
type UnitStatus struct {
	Name, Description                string
	LoadState, ActiveState, SubState string
	Following                        string
	JobID                            uint64
	JobType                          string
}

// UnitProps is everything the unit objects show of one unit.
type UnitProps struct {
	ID                               string
	Names                            []string
	Description                      string
	Documentation                    []string
	LoadState, ActiveState, SubState string
	// LoadError is a human message when LoadState is not loaded.
	LoadError      string
	FragmentPath   string
	DropInPaths    []string
	UnitFileState  string
	UnitFilePreset string
	// Deps maps systemd's dependency property names (Requires, WantedBy,
	// After, Triggers...) to unit names.
	Deps                                                              map[string][]string
	StateChange, ActiveEnter, ActiveExit, InactiveEnter, InactiveExit time.Time
	ConditionResult                                                   bool
	ConditionTimestamp                                                time.Time
	NeedDaemonReload                                                  bool
	CanStart, CanStop, CanReload, CanIsolate                          bool
	RefuseManualStart, RefuseManualStop                               bool
	JobID                                                             uint64
	JobType                                                           string
	// Transient units were made at run time (StartTransientUnit).
	Transient bool
	// InvocationID is the 16-byte ID of the unit's last activation.
	InvocationID []byte
	Service      *ServiceProps // set for services
	// Slice is the slice the unit sits in (a slice's parent); "" for
	// types without a cgroup and for the root slice.
	Slice string
	// TypeProps are the type interface's properties (Path, Mount,
	// Automount, Swap...) by their D-Bus names, as the unit type reports
	// them in `show` form; see typeprops.go.
	TypeProps map[string]string
	// FreezerState is running, freezing, frozen or thawing; CanFreeze
	// whether the unit's type can be frozen (see freeze.go).
	FreezerState string
	CanFreeze    bool
	// CanClean lists the kinds of directories clean may remove;
	// CleanResult is the last clean's result (see clean.go).
	CanClean    []string
	CleanResult string
	// Directories are the unit's own directories (RuntimeDirectory and
	// friends) and RuntimeDirectoryPreserve (see clean.go).
	Directories         []ExecDirectory
	DirectoriesPreserve string
	// TimeoutClean is timeout-clean (TimeoutCleanUSec): 0 or infinity
	// for none.
	TimeoutClean time.Duration
}

// ServiceProps is the Service interface's state.
type ServiceProps struct {
	Type, Restart, NotifyAccess, KillMode string
	PIDFile                               string
	RemainAfterExit                       bool
	MainPID, ControlPID                   uint32
	Result, ReloadResult                  string
	NRestarts                             uint32
	StatusText                            string
	// ExecMainCode is the si_code of the main process's exit (1 exited,
	// 2 killed, 3 dumped; 0 not exited); ExecMainStatus the status or
	// signal number.
	ExecMainCode, ExecMainStatus int32
	ExecMainPID                  uint32
	ExecMainStart, ExecMainExit  time.Time
	ExecStart                    []ExecCommand
	// Exec holds every command list but ExecStart (ExecStartPre,
	// ExecStartPost, ExecReload, ExecStop, ExecStopPost, ExecCondition).
	Exec map[string][]ExecCommand
	// Environment, WorkingDirectory, User and Group as configured.
	Environment                   []string
	WorkingDirectory, User, Group string
	TimeoutStart, TimeoutStop     time.Duration // 0 = infinity
	RestartDelay                  time.Duration
	ControlGroup                  string
	// Resource figures; nil when unknown (sent as UINT64_MAX).
	MemoryCurrent, TasksCurrent, CPUUsageNSec *uint64
}

// ExecCommand is one ExecStart= line and its last run.
type ExecCommand struct {
	Path          string
	Argv          []string
	IgnoreFailure bool
	Start, Exit   time.Time
	PID           uint32
	Code, Status  int32
}

// Job is one pending (or just finished) job.
type Job struct {
	ID     uint64
	Unit   string
	Type   string
	State  string // waiting, running, done
	Result string // when done: done, failed, canceled, ...
}

// Process is one process of a unit, for GetUnitProcesses.
type Process struct {
	CGroup  string
	PID     uint32
	Command string
}

// UnitFile is one row of ListUnitFiles.
type UnitFile struct {
	Path, State string
}

// InstallChange is one link made or removed by enable or disable.
type InstallChange struct {
	Type, Path, Source string
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventJobNew EventKind = iota + 1
	EventJobRemoved
	EventUnitNew
	EventUnitRemoved
	// EventUnitChanged is a unit's state change (PropertiesChanged).
	EventUnitChanged
	EventReloading
	EventStartupFinished
	// EventUnitFilesChanged follows enable, disable, mask and friends.
	EventUnitFilesChanged
)

// Event is one change the manager reports to the signals.
type Event struct {
	Kind EventKind
	Job  Job    // JobNew, JobRemoved
	Unit string // UnitNew, UnitRemoved, UnitChanged
	// ActiveState and SubState are a changed unit's new states.
	ActiveState, SubState string
	// Active is Reloading's argument.
	Active bool
	// Startup are StartupFinished's six durations (firmware, loader,
	// kernel, initrd, userspace, total).
	Startup [6]time.Duration
}

// Error is a D-Bus error with its name, as a Manager returns it to have a
// particular error name sent (systemd's names decide systemctl's exit
// codes). Any other error is sent as org.freedesktop.DBus.Error.Failed.
type Error struct {
	Name    string
	Message string
}

func (e *Error) Error() string { return e.Name + ": " + e.Message }

// D-Bus error names used here.
const (
	ErrNameFailed               = "org.freedesktop.DBus.Error.Failed"
	ErrNameAccessDenied         = "org.freedesktop.DBus.Error.AccessDenied"
	ErrNameUnknownMethod        = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrNameUnknownObject        = "org.freedesktop.DBus.Error.UnknownObject"
	ErrNameUnknownInterface     = "org.freedesktop.DBus.Error.UnknownInterface"
	ErrNameUnknownProperty      = "org.freedesktop.DBus.Error.UnknownProperty"
	ErrNameInvalidArgs          = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrNamePropertyReadOnly     = "org.freedesktop.DBus.Error.PropertyReadOnly"
	ErrNameNotSupported         = "org.freedesktop.DBus.Error.NotSupported"
	ErrNameFileNotFound         = "org.freedesktop.DBus.Error.FileNotFound"
	ErrNameNoSuchUnit           = "org.freedesktop.systemd1.NoSuchUnit"
	ErrNameNoSuchJob            = "org.freedesktop.systemd1.NoSuchJob"
	ErrNameNoUnitForPID         = "org.freedesktop.systemd1.NoUnitForPID"
	ErrNameLoadFailed           = "org.freedesktop.systemd1.LoadFailed"
	ErrNameJobTypeNotApplicable = "org.freedesktop.systemd1.JobTypeNotApplicable"
	ErrNameOnlyByDependency     = "org.freedesktop.systemd1.OnlyByDependency"
	ErrNameNoIsolation          = "org.freedesktop.systemd1.NoIsolation"
	ErrNameUnitMasked           = "org.freedesktop.systemd1.UnitMasked"
	ErrNameUnitExists           = "org.freedesktop.systemd1.UnitExists"
	ErrNameNoUnitForCgroup      = "org.freedesktop.systemd1.NoSuchUnit"
)

// Errorf builds an *Error.
func Errorf(name, format string, args ...any) *Error {
	return &Error{Name: name, Message: fmt.Sprintf(format, args...)}
}
