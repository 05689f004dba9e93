// Package api holds the types of Vigil's control protocol: the requests
// initctl sends to the manager over the control socket and the answers it
// gets. It has no behaviour, so that a client needs nothing else of Vigil.
//
// The framing is newline-delimited JSON (see observer/control): a Request,
// then any number of Progress frames, then one Result or Error frame.
package api

import "time"

// Method names.
const (
	MethodList         = "list"          // ListArgs -> []UnitSummary
	MethodStatus       = "status"        // UnitArgs -> UnitStatus
	MethodShow         = "show"          // ShowArgs -> []Property
	MethodCat          = "cat"           // UnitArgs -> CatResult
	MethodJob          = "job"           // JobArgs -> JobOutcome; progress: JobEvent
	MethodIsActive     = "is-active"     // UnitsArgs -> []string
	MethodIsFailed     = "is-failed"     // UnitsArgs -> []string
	MethodIsEnabled    = "is-enabled"    // UnitsArgs -> []string
	MethodEnable       = "enable"        // UnitsArgs -> Changes
	MethodDisable      = "disable"       // UnitsArgs -> Changes
	MethodDaemonReload = "daemon-reload" // none -> ReloadResult
	MethodResetFailed  = "reset-failed"  // UnitsArgs -> none
	MethodKill         = "kill"          // KillArgs -> none
	MethodListJobs     = "list-jobs"     // none -> []JobInfo
	MethodLogs         = "logs"          // LogsArgs -> []LogLine; progress (follow): LogLine
	MethodShutdown     = "shutdown"      // ShutdownArgs -> none
	MethodEmit         = "emit"          // EmitArgs -> none
	MethodObserve      = "observe"       // ObserveArgs -> none; progress: ObservedEvent
	MethodObservers    = "observers"     // none -> ObserversResult
	MethodPing         = "ping"          // none -> Version
	MethodSetProperty  = "set-property"  // SetPropertyArgs -> SetPropertyResult
	MethodCancel       = "cancel"        // CancelArgs -> CancelResult
)

// Job types, as systemd names them.
const (
	JobStart           = "start"
	JobStop            = "stop"
	JobRestart         = "restart"
	JobReload          = "reload"
	JobTryRestart      = "try-restart"
	JobReloadOrRestart = "reload-or-restart"
	JobVerifyActive    = "verify-active"
)

// Job modes.
const (
	ModeReplace             = "replace"
	ModeFail                = "fail"
	ModeIsolate             = "isolate"
	ModeIgnoreDependencies  = "ignore-dependencies"
	ModeIgnoreRequirements  = "ignore-requirements"
	ModeReplaceIrreversibly = "replace-irreversibly"
)

// Job results, as systemd names them.
const (
	ResultDone       = "done"
	ResultCanceled   = "canceled"
	ResultTimeout    = "timeout"
	ResultFailed     = "failed"
	ResultDependency = "dependency"
	ResultSkipped    = "skipped"
	ResultInvalid    = "invalid"
	ResultAssert     = "assert"
	ResultUnsupport  = "unsupported"
)

// Error codes in Error frames. They map onto systemctl's exit statuses.
const (
	ErrGeneric     = 1
	ErrInvalidArgs = 2
	ErrNotFound    = 4 // systemctl: "no such unit" exits 4
	ErrAccess      = 5
	ErrJobFailed   = 6
)

// ListArgs filters a unit listing. Empty fields match everything; without
// All, only units that are loaded and active, failed or have a job are shown,
// as systemctl does.
type ListArgs struct {
	Types    []string `json:"types,omitempty"`
	States   []string `json:"states,omitempty"`
	Patterns []string `json:"patterns,omitempty"`
	All      bool     `json:"all,omitempty"`
}

// UnitSummary is one row of a listing.
type UnitSummary struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Load        string `json:"load"`
	Active      string `json:"active"`
	Sub         string `json:"sub"`
	Description string `json:"description"`
	MainPID     int    `json:"main_pid,omitempty"`
	JobID       uint64 `json:"job_id,omitempty"`
	JobType     string `json:"job_type,omitempty"`
	// Type-specific columns (timers: next/last elapse; sockets: listen).
	Extra map[string]string `json:"extra,omitempty"`
	// Accounting is the unit's cgroup accounting, when it has a cgroup.
	Accounting *Accounting `json:"accounting,omitempty"`
}

// Accounting is what a unit's cgroup has used; absent values are unknown
// (the controller is off).
type Accounting struct {
	MemoryCurrent *uint64 `json:"memory_current,omitempty"`
	MemoryPeak    *uint64 `json:"memory_peak,omitempty"`
	Tasks         *uint64 `json:"tasks,omitempty"`
	CPUUsageNSec  *uint64 `json:"cpu_usage_nsec,omitempty"`
	IOReadBytes   *uint64 `json:"io_read_bytes,omitempty"`
	IOWriteBytes  *uint64 `json:"io_write_bytes,omitempty"`
}

// UnitArgs names one unit.
type UnitArgs struct {
	Unit string `json:"unit"`
	// Lines is how many log lines status should include (initctl status
	// -n); 0 means the manager's default. Other methods ignore it.
	Lines int `json:"lines,omitempty"`
}

// UnitsArgs names units (or patterns, where the method allows).
type UnitsArgs struct {
	Units   []string `json:"units"`
	Runtime bool     `json:"runtime,omitempty"`
}

// ShowArgs selects properties; empty Properties means all.
type ShowArgs struct {
	Unit       string   `json:"unit"`
	Properties []string `json:"properties,omitempty"`
}

// Property is one key=value of `initctl show`.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CatResult is a unit's files as they are on disk.
type CatResult struct {
	Files []CatFile `json:"files"`
}

// CatFile is one fragment or drop-in.
type CatFile struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Process is one process of a unit.
type Process struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	Main    bool   `json:"main,omitempty"`
	Control bool   `json:"control,omitempty"`
}

// UnitStatus is what `initctl status` shows.
type UnitStatus struct {
	UnitSummary
	Fragment      string            `json:"fragment,omitempty"`
	DropIns       []string          `json:"drop_ins,omitempty"`
	UnitFileState string            `json:"unit_file_state,omitempty"`
	LoadError     string            `json:"load_error,omitempty"`
	Result        string            `json:"result,omitempty"`
	ExitStatus    string            `json:"exit_status,omitempty"` // "status=1" / "signal=KILL"
	StatusText    string            `json:"status_text,omitempty"`
	NRestarts     int               `json:"n_restarts,omitempty"`
	ActiveEnter   time.Time         `json:"active_enter,omitempty"`
	ActiveExit    time.Time         `json:"active_exit,omitempty"`
	InactiveEnter time.Time         `json:"inactive_enter,omitempty"`
	StateChange   time.Time         `json:"state_change,omitempty"`
	ControlGroup  string            `json:"control_group,omitempty"`
	Processes     []Process         `json:"processes,omitempty"`
	MemoryCurrent *uint64           `json:"memory_current,omitempty"`
	MemoryPeak    *uint64           `json:"memory_peak,omitempty"`
	TasksCurrent  *uint64           `json:"tasks_current,omitempty"`
	CPUUsageNSec  *uint64           `json:"cpu_usage_nsec,omitempty"`
	Triggers      []string          `json:"triggers,omitempty"`
	TriggeredBy   []string          `json:"triggered_by,omitempty"`
	Conditions    []string          `json:"conditions,omitempty"` // failed conditions, readable
	NeedReload    bool              `json:"need_daemon_reload,omitempty"`
	Logs          []LogLine         `json:"logs,omitempty"`
	Extra         map[string]string `json:"extra,omitempty"`
}

// JobArgs asks for jobs on units.
type JobArgs struct {
	Type    string   `json:"type"`
	Units   []string `json:"units"`
	Mode    string   `json:"mode,omitempty"`
	NoBlock bool     `json:"no_block,omitempty"`
}

// JobEvent is a progress frame while a client waits for its jobs.
type JobEvent struct {
	JobID  uint64 `json:"job_id"`
	Unit   string `json:"unit"`
	Type   string `json:"type"`
	State  string `json:"state"`            // waiting, running, done
	Result string `json:"result,omitempty"` // when done
	// Message is a human line such as "Starting Foo..." or a wait notice
	// ("A start job is running for Foo (3s / 1min 30s)").
	Message string `json:"message,omitempty"`
}

// JobOutcome is the result of a job request: the jobs that were enqueued
// and, unless NoBlock, how each ended.
type JobOutcome struct {
	Jobs []JobInfo `json:"jobs"`
}

// JobInfo describes one job.
type JobInfo struct {
	ID     uint64 `json:"id"`
	Unit   string `json:"unit"`
	Type   string `json:"type"`
	State  string `json:"state"`
	Result string `json:"result,omitempty"`
	// Reason explains a failure in one line, for the client to print.
	Reason string `json:"reason,omitempty"`
}

// Changes lists what enable/disable did.
type Changes struct {
	Changes []Change `json:"changes"`
}

// Change is one link made or removed.
type Change struct {
	Type        string `json:"type"` // symlink, unlink
	Path        string `json:"path"`
	Destination string `json:"destination,omitempty"`
}

// ReloadResult says what a daemon-reload changed.
type ReloadResult struct {
	Added    []string `json:"added,omitempty"`
	Removed  []string `json:"removed,omitempty"`
	Changed  []string `json:"changed,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// KillArgs sends a signal to a unit's processes.
type KillArgs struct {
	Unit   string `json:"unit"`
	Signal string `json:"signal,omitempty"` // default SIGTERM
	Whom   string `json:"whom,omitempty"`   // all (default), main, control
}

// LogsArgs selects log lines.
type LogsArgs struct {
	Unit   string    `json:"unit,omitempty"` // empty: all units
	Lines  int       `json:"lines,omitempty"`
	Follow bool      `json:"follow,omitempty"`
	Since  time.Time `json:"since,omitempty"`
}

// LogLine is one captured line.
type LogLine struct {
	Time   time.Time `json:"time"`
	Unit   string    `json:"unit"`
	Stream string    `json:"stream"` // stdout, stderr, vigil
	PID    int       `json:"pid,omitempty"`
	Text   string    `json:"text"`
}

// ShutdownArgs asks for poweroff, reboot or halt.
type ShutdownArgs struct {
	Action string `json:"action"`
}

// EmitArgs injects a custom event.
type EmitArgs struct {
	Kind  string            `json:"kind"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// ObserveArgs subscribes to live events matching Filter (observer syntax).
type ObserveArgs struct {
	Filter string `json:"filter,omitempty"`
}

// ObservedEvent is one live event.
type ObservedEvent struct {
	Seq    uint64            `json:"seq"`
	Source string            `json:"source"`
	Kind   string            `json:"kind"`
	Mono   time.Duration     `json:"mono"`
	Wall   time.Time         `json:"wall"`
	Attrs  map[string]string `json:"attrs,omitempty"`
	HoldID uint64            `json:"hold_id,omitempty"`
}

// ObserversResult lists observers and sources.
type ObserversResult struct {
	Observers []ObserverRow `json:"observers"`
	Sources   []SourceRow   `json:"sources"`
}

// ObserverRow is one observer.
type ObserverRow struct {
	ID      uint64 `json:"id"`
	Guest   string `json:"guest"`
	Name    string `json:"name"`
	Filter  string `json:"filter"`
	Matched uint64 `json:"matched"`
	Dropped uint64 `json:"dropped"`
	// Decides is set for observers that answer held events; Overruled
	// counts the holds they did not answer in time.
	Decides   bool   `json:"decides,omitempty"`
	Overruled uint64 `json:"overruled,omitempty"`
}

// SourceRow is one source.
type SourceRow struct {
	Name    string `json:"name"`
	Posted  uint64 `json:"posted"`
	Dropped uint64 `json:"dropped"`
	// Restarts counts the source's goroutines run again after a panic or
	// an error; LastError is the latest failure; Failed says the source
	// gave up for good.
	Restarts  uint64 `json:"restarts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	Failed    bool   `json:"failed,omitempty"`
}

// Version answers ping.
type Version struct {
	Version string `json:"version"`
	PID     int    `json:"pid"`
	PID1    bool   `json:"pid1"`
}

// SetPropertyArgs changes resource settings of a unit while it runs
// (`initctl set-property UNIT KEY=VALUE...`). Keys are those of the
// unit's [resources] section ("memory-max=64M", "cpu-weight=200"). The
// change is kept in a drop-in, 50-set-property.toml: under the unit
// directory in /etc, or with Runtime under /run until the next boot.
type SetPropertyArgs struct {
	Unit       string   `json:"unit"`
	Properties []string `json:"properties"`
	Runtime    bool     `json:"runtime,omitempty"`
}

// SetPropertyResult says where the change was kept and what the kernel
// could not apply.
type SetPropertyResult struct {
	DropIn   string   `json:"drop_in"`
	Warnings []string `json:"warnings,omitempty"`
}

// CancelArgs names the jobs to cancel; none means every pending job.
type CancelArgs struct {
	IDs []uint64 `json:"ids,omitempty"`
}

// CancelResult counts the jobs canceled.
type CancelResult struct {
	Canceled int `json:"canceled"`
}
