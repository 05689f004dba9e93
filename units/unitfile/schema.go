package unitfile

import (
	"syscall"
	"time"
)

// LoadState says whether a unit's files were loaded, as systemd's LoadState.
type LoadState string

// The load states.
const (
	LoadStateLoaded     LoadState = "loaded"
	LoadStateNotFound   LoadState = "not-found"
	LoadStateBadSetting LoadState = "bad-setting"
	LoadStateMasked     LoadState = "masked"
)

// Unit is a unit as decoded from its file and drop-ins, with defaults
// applied. Exactly the type-specific section of its Type is non-nil (and
// Resources for the types that have cgroups); a unit that is not loaded
// has only its names, LoadState and Problems.
//
// Sections are declared by the `section` tag on the fields below, and the
// unit types that allow a section by `types`: adding a section is adding
// its struct and one field here.
type Unit struct {
	Name      string   // primary name, "getty@tty1.service"
	ID        Name     // Name, parsed
	Type      UnitType // ID.Type
	Aliases   []string // other names: symlinks in the unit directories and default.target-style links
	Fragment  string   // the unit file read (a template's file for an instance); "" if none
	DropIns   []string // drop-in files applied, in the order applied
	LoadState LoadState
	// Problems lists every problem found, errors and warnings; a unit with
	// an error has LoadState bad-setting.
	Problems []Problem

	Unit      UnitSection       `section:"unit"`
	Install   InstallSection    `section:"install"`
	Service   *ServiceSection   `section:"service" types:"service"`
	Socket    *SocketSection    `section:"socket" types:"socket"`
	Mount     *MountSection     `section:"mount" types:"mount"`
	Automount *AutomountSection `section:"automount" types:"automount"`
	Swap      *SwapSection      `section:"swap" types:"swap"`
	Path      *PathSection      `section:"path" types:"path"`
	Timer     *TimerSection     `section:"timer" types:"timer"`
	Target    *TargetSection    `section:"target" types:"target"`
	Scope     *ScopeSection     `section:"scope" types:"scope"`
	Resources *ResourcesSection `section:"resources" types:"service socket mount slice scope"`
	// Trigger is events that start the unit (services, targets, mounts).
	Trigger *TriggerSection `section:"trigger" types:"service target mount"`
}

// UnitSection is [unit]: description, dependencies, ordering, conditions.
// Unit lists may be written as an array or as one string of names
// separated by spaces.
type UnitSection struct {
	Description   string   `key:"description"`
	Documentation []string `key:"documentation" check:"url"`

	Requires             []string `key:"requires" check:"unit-names" opt:"split"`
	Wants                []string `key:"wants" check:"unit-names" opt:"split"`
	Requisite            []string `key:"requisite" check:"unit-names" opt:"split"`
	BindsTo              []string `key:"binds-to" check:"unit-names" opt:"split"`
	PartOf               []string `key:"part-of" check:"unit-names" opt:"split"`
	Upholds              []string `key:"upholds" check:"unit-names" opt:"split"`
	Conflicts            []string `key:"conflicts" check:"unit-names" opt:"split"`
	After                []string `key:"after" check:"unit-names" opt:"split"`
	Before               []string `key:"before" check:"unit-names" opt:"split"`
	OnFailure            []string `key:"on-failure" check:"unit-names" opt:"split"`
	OnSuccess            []string `key:"on-success" check:"unit-names" opt:"split"`
	PropagatesReloadTo   []string `key:"propagates-reload-to" check:"unit-names" opt:"split"`
	ReloadPropagatedFrom []string `key:"reload-propagated-from" check:"unit-names" opt:"split"`

	OnFailureJobMode JobMode `key:"on-failure-job-mode"`
	// DefaultDependencies adds the implicit dependencies of the unit's type
	// (default true).
	DefaultDependencies bool `key:"default-dependencies"`
	StopWhenUnneeded    bool `key:"stop-when-unneeded"`
	RefuseManualStart   bool `key:"refuse-manual-start"`
	RefuseManualStop    bool `key:"refuse-manual-stop"`
	AllowIsolate        bool `key:"allow-isolate"`
	IgnoreOnIsolate     bool `key:"ignore-on-isolate"`

	StartLimitInterval time.Duration   `key:"start-limit-interval"`      // default 10s
	StartLimitBurst    int             `key:"start-limit-burst" min:"0"` // default 5
	StartLimitAction   EmergencyAction `key:"start-limit-action"`
	FailureAction      EmergencyAction `key:"failure-action"`
	SuccessAction      EmergencyAction `key:"success-action"`
	JobTimeout         time.Duration   `key:"job-timeout"` // default Infinity
	JobTimeoutAction   EmergencyAction `key:"job-timeout-action"`

	// Conditions are checked before starting: a false one skips the start
	// without failing. Asserts fail the start.
	Conditions Conditions `key:"condition"`
	Asserts    Conditions `key:"assert"`
}

// InstallSection is [install]: what enable and disable do.
type InstallSection struct {
	WantedBy        []string `key:"wanted-by" check:"unit-names" opt:"split"`
	RequiredBy      []string `key:"required-by" check:"unit-names" opt:"split"`
	UpheldBy        []string `key:"upheld-by" check:"unit-names" opt:"split"`
	Also            []string `key:"also" check:"unit-names" opt:"split"`
	Alias           []string `key:"alias" check:"unit-names" opt:"split"`
	DefaultInstance string   `key:"default-instance" check:"instance"`
}

// Empty reports whether the section says nothing: such a unit is "static".
func (s *InstallSection) Empty() bool {
	return len(s.WantedBy) == 0 && len(s.RequiredBy) == 0 && len(s.UpheldBy) == 0 &&
		len(s.Also) == 0 && len(s.Alias) == 0
}

// ExecContext holds how processes are started: credentials, environment,
// directories, standard streams, limits. It is shared by every section that
// runs processes ([service], [socket], [mount]), written once.
type ExecContext struct {
	Environment      Environment      `key:"environment"`
	EnvironmentFiles EnvironmentFiles `key:"environment-file"`
	PassEnvironment  []string         `key:"pass-environment" opt:"split" check:"env-name"`
	WorkingDirectory WorkingDirectory `key:"working-directory"`
	RootDirectory    string           `key:"root-directory" check:"abs-path"`

	User                string   `key:"user" check:"user"`
	Group               string   `key:"group" check:"user"`
	SupplementaryGroups []string `key:"supplementary-groups" check:"user" opt:"split"`
	DynamicUser         bool     `key:"dynamic-user"`

	UMask          Mode   `key:"umask"` // default 0022
	Nice           *int   `key:"nice" min:"-20" max:"19"`
	OOMScoreAdjust *int   `key:"oom-score-adjust" min:"-1000" max:"1000"`
	Limits         Limits `key:"limits"`

	StandardInput    StdIO  `key:"standard-input"`  // default null
	StandardOutput   StdIO  `key:"standard-output"` // default log
	StandardError    StdIO  `key:"standard-error"`  // default inherit
	TTYPath          string `key:"tty-path" check:"abs-path"`
	TTYReset         bool   `key:"tty-reset"`
	TTYVHangup       bool   `key:"tty-vhangup"`
	SyslogIdentifier string `key:"syslog-identifier"`

	NoNewPrivileges       bool         `key:"no-new-privileges"`
	CapabilityBoundingSet Capabilities `key:"capability-bounding-set"`
	AmbientCapabilities   Capabilities `key:"ambient-capabilities"`
	IgnoreSIGPIPE         bool         `key:"ignore-sigpipe"` // default true
	PrivateTmp            bool         `key:"private-tmp"`

	// The unit's own directories, relative to /run, /var/lib, /var/cache,
	// /var/log and /etc: made (owned by user) before the unit starts,
	// passed as $RUNTIME_DIRECTORY and friends, removed by clean (the
	// runtime ones also when the unit stops; see units/execdirs.go).
	RuntimeDirectory           []string        `key:"runtime-directory" opt:"split" check:"rel-path"`
	StateDirectory             []string        `key:"state-directory" opt:"split" check:"rel-path"`
	CacheDirectory             []string        `key:"cache-directory" opt:"split" check:"rel-path"`
	LogsDirectory              []string        `key:"logs-directory" opt:"split" check:"rel-path"`
	ConfigurationDirectory     []string        `key:"configuration-directory" opt:"split" check:"rel-path"`
	RuntimeDirectoryMode       Mode            `key:"runtime-directory-mode"`       // default 0755
	StateDirectoryMode         Mode            `key:"state-directory-mode"`         // default 0755
	CacheDirectoryMode         Mode            `key:"cache-directory-mode"`         // default 0755
	LogsDirectoryMode          Mode            `key:"logs-directory-mode"`          // default 0755
	ConfigurationDirectoryMode Mode            `key:"configuration-directory-mode"` // default 0755
	RuntimeDirectoryPreserve   DirPreserveMode `key:"runtime-directory-preserve"`   // default no
	// TimeoutClean bounds `systemctl clean`: a clean still running then
	// is abandoned and the unit fails (units/clean.go).
	TimeoutClean time.Duration `key:"timeout-clean"` // default Infinity
}

// DirPreserveMode is runtime-directory-preserve: whether a stopped unit's
// runtime directories stay (yes), stay across a restart only (restart),
// or go (no).
type DirPreserveMode string

func (DirPreserveMode) enumValues() []string { return []string{"no", "yes", "restart"} }

// KillContext holds how processes are stopped, shared like ExecContext.
type KillContext struct {
	KillMode        KillMode       `key:"kill-mode"`         // default control-group
	KillSignal      syscall.Signal `key:"kill-signal"`       // default SIGTERM
	FinalKillSignal syscall.Signal `key:"final-kill-signal"` // default SIGKILL
	WatchdogSignal  syscall.Signal `key:"watchdog-signal"`   // default SIGABRT
	SendSIGKILL     bool           `key:"send-sigkill"`      // default true
	SendSIGHUP      bool           `key:"send-sighup"`
}

// ServiceSection is [service].
type ServiceSection struct {
	Type ServiceType `key:"type"` // default simple

	// ExecStart is one command; several only for type oneshot.
	ExecStart     Commands `key:"exec-start" opt:"words"`
	ExecStartPre  Commands `key:"exec-start-pre"`
	ExecStartPost Commands `key:"exec-start-post"`
	ExecCondition Commands `key:"exec-condition"`
	ExecReload    Commands `key:"exec-reload"`
	ExecStop      Commands `key:"exec-stop"`
	ExecStopPost  Commands `key:"exec-stop-post"`

	RemainAfterExit bool   `key:"remain-after-exit"`
	GuessMainPID    bool   `key:"guess-main-pid"` // default true
	PIDFile         string `key:"pid-file" check:"abs-path"`
	BusName         string `key:"bus-name"`

	Restart RestartPolicy `key:"restart"` // default no
	//lint:ignore ST1011 named after systemd's RestartSec=, which the manager already uses
	RestartSec      time.Duration `key:"restart-sec"` // default 100ms
	RestartSteps    int           `key:"restart-steps" min:"0"`
	RestartMaxDelay time.Duration `key:"restart-max-delay"` // default Infinity: no backoff cap

	// Timeout (timeout-sec) sets TimeoutStart and TimeoutStop at once; it is listed
	// before them so a more specific key in the same file wins.
	Timeout      time.Duration `key:"timeout-sec" opt:"transient"`
	TimeoutStart time.Duration `key:"timeout-start"` // default 90s, Infinity for oneshot
	TimeoutStop  time.Duration `key:"timeout-stop"`  // default 90s
	TimeoutAbort time.Duration `key:"timeout-abort"` // default: timeout-stop
	RuntimeMax   time.Duration `key:"runtime-max"`   // default Infinity
	Watchdog     time.Duration `key:"watchdog-sec"`  // 0: no watchdog

	SuccessExitStatus        ExitStatusSet `key:"success-exit-status"`
	RestartPreventExitStatus ExitStatusSet `key:"restart-prevent-exit-status"`
	RestartForceExitStatus   ExitStatusSet `key:"restart-force-exit-status"`

	NotifyAccess           NotifyAccess `key:"notify-access"` // default none; main for notify types
	FileDescriptorStoreMax int          `key:"file-descriptor-store-max" min:"0"`
	Sockets                []string     `key:"sockets" check:"unit-names" opt:"split"`

	ExecContext
	KillContext
}

// SocketSection is [socket] (issue 5).
type SocketSection struct {
	ListenStream           []string `key:"listen-stream" check:"listen"`
	ListenDatagram         []string `key:"listen-datagram" check:"listen"`
	ListenSequentialPacket []string `key:"listen-sequential-packet" check:"listen-unix"`
	ListenFIFO             []string `key:"listen-fifo" check:"abs-path"`
	ListenNetlink          []string `key:"listen-netlink" check:"netlink"`
	ListenSpecial          []string `key:"listen-special" check:"abs-path"`

	SocketMode    Mode     `key:"socket-mode"`    // default 0666
	DirectoryMode Mode     `key:"directory-mode"` // default 0755
	SocketUser    string   `key:"socket-user" check:"user"`
	SocketGroup   string   `key:"socket-group" check:"user"`
	RemoveOnStop  bool     `key:"remove-on-stop"`
	Symlinks      []string `key:"symlinks" check:"abs-path"`

	BindIPv6Only    BindIPv6Only `key:"bind-ipv6-only"` // default "default"
	ReusePort       bool         `key:"reuse-port"`
	Backlog         int          `key:"backlog" min:"1"` // default 4096
	FreeBind        bool         `key:"free-bind"`
	Transparent     bool         `key:"transparent"`
	KeepAlive       bool         `key:"keep-alive"`
	NoDelay         bool         `key:"no-delay"`
	PassCredentials bool         `key:"pass-credentials"`
	ReceiveBuffer   *Size        `key:"receive-buffer"`
	SendBuffer      *Size        `key:"send-buffer"`

	FileDescriptorName      string `key:"file-descriptor-name" check:"fdname"`
	Accept                  bool   `key:"accept"`
	MaxConnections          int    `key:"max-connections" min:"1"` // default 64
	MaxConnectionsPerSource int    `key:"max-connections-per-source" min:"0"`
	// Service is the unit activated; default the socket's own name with
	// .service (a template NAME@.service with accept = true).
	Service string `key:"service" check:"unit-name"`

	ExecStartPre  Commands      `key:"exec-start-pre"`
	ExecStartPost Commands      `key:"exec-start-post"`
	ExecStopPre   Commands      `key:"exec-stop-pre"`
	ExecStopPost  Commands      `key:"exec-stop-post"`
	Timeout       time.Duration `key:"timeout-sec"` // default 90s

	ExecContext
	KillContext
}

// MountSection is [mount] (issue 8).
type MountSection struct {
	What          string        `key:"what"`
	Where         string        `key:"where" check:"abs-path"` // default: from the unit name
	FSType        string        `key:"type"`
	Options       string        `key:"options"`
	SloppyOptions bool          `key:"sloppy-options"`
	LazyUnmount   bool          `key:"lazy-unmount"`
	ForceUnmount  bool          `key:"force-unmount"`
	ReadWriteOnly bool          `key:"read-write-only"`
	DirectoryMode Mode          `key:"directory-mode"` // default 0755
	Timeout       time.Duration `key:"timeout"`        // default 90s

	ExecContext
	KillContext
}

// AutomountSection is [automount] (issue 8).
type AutomountSection struct {
	Where         string        `key:"where" check:"abs-path"` // default: from the unit name
	ExtraOptions  string        `key:"extra-options"`
	DirectoryMode Mode          `key:"directory-mode"` // default 0755
	TimeoutIdle   time.Duration `key:"timeout-idle"`   // 0: never expire
}

// SwapSection is [swap] (issue 8): a swap device or file activated with
// swapon(2).
type SwapSection struct {
	What     string        `key:"what" check:"abs-path"` // default: from the unit name
	Priority *int          `key:"priority" min:"-1" max:"32767"`
	Options  string        `key:"options"`
	Timeout  time.Duration `key:"timeout"` // default 90s
}

// PathSection is [path] (issue 7).
type PathSection struct {
	PathExists        []string `key:"path-exists" check:"abs-path"`
	PathExistsGlob    []string `key:"path-exists-glob" check:"abs-path"`
	PathChanged       []string `key:"path-changed" check:"abs-path"`
	PathModified      []string `key:"path-modified" check:"abs-path"`
	DirectoryNotEmpty []string `key:"directory-not-empty" check:"abs-path"`
	MakeDirectory     bool     `key:"make-directory"`
	DirectoryMode     Mode     `key:"directory-mode"` // default 0755
	// Unit is the unit activated; default the path unit's name with .service.
	Unit                 string        `key:"unit" check:"unit-name"`
	TriggerLimitInterval time.Duration `key:"trigger-limit-interval"`      // default 2s
	TriggerLimitBurst    int           `key:"trigger-limit-burst" min:"0"` // default 200
	// Hold makes a process that opens a watched path wait (fanotify) until
	// the unit is active, for at most HoldTimeout, then get HoldVerdict.
	Hold        bool          `key:"hold"`
	HoldTimeout time.Duration `key:"hold-timeout"` // default 90s
	HoldVerdict Verdict       `key:"hold-verdict"` // default allow
}

// TimerSection is [timer] (issue 10). OnCalendar is kept as written; the
// calendar language is parsed by the timer implementation.
type TimerSection struct {
	OnActive          []time.Duration `key:"on-active"`
	OnBoot            []time.Duration `key:"on-boot"`
	OnStartup         []time.Duration `key:"on-startup"`
	OnUnitActive      []time.Duration `key:"on-unit-active"`
	OnUnitInactive    []time.Duration `key:"on-unit-inactive"`
	OnCalendar        []string        `key:"on-calendar" check:"nonempty"`
	Accuracy          time.Duration   `key:"accuracy"` // default 1min
	RandomizedDelay   time.Duration   `key:"randomized-delay"`
	FixedRandomDelay  bool            `key:"fixed-random-delay"`
	Persistent        bool            `key:"persistent"`
	WakeSystem        bool            `key:"wake-system"`
	RemainAfterElapse bool            `key:"remain-after-elapse"` // default true
	OnClockChange     bool            `key:"on-clock-change"`
	OnTimezoneChange  bool            `key:"on-timezone-change"`
	// Unit is the unit activated; default the timer's name with .service.
	Unit string `key:"unit" check:"unit-name"`
}

// TargetSection is [target]: targets have no settings of their own; the
// section may be present and empty.
type TargetSection struct{}

// ScopeSection is [scope]: a scope runs no command of its own; it holds
// processes started elsewhere (systemd-run --scope), so scopes are only
// made at run time, as transient units.
type ScopeSection struct {
	TimeoutStop time.Duration `key:"timeout-stop"` // default 90s
	RuntimeMax  time.Duration `key:"runtime-max"`  // default Infinity

	KillContext
}

// ResourcesSection is [resources]: the unit's cgroup and its limits
// (issue 4), for services, sockets, mounts, slices and scopes.
type ResourcesSection struct {
	// Slice is the slice unit the cgroup is placed in (default
	// system.slice for services).
	Slice    string   `key:"slice" check:"unit-name"`
	Delegate Delegate `key:"delegate"`

	MemoryMin     *Size `key:"memory-min" opt:"percent"`
	MemoryLow     *Size `key:"memory-low" opt:"percent"`
	MemoryHigh    *Size `key:"memory-high" opt:"percent"`
	MemoryMax     *Size `key:"memory-max" opt:"percent"`
	MemorySwapMax *Size `key:"memory-swap-max" opt:"percent"`

	CPUWeight          *int          `key:"cpu-weight" min:"1" max:"10000"`
	StartupCPUWeight   *int          `key:"startup-cpu-weight" min:"1" max:"10000"`
	CPUQuota           *Percent      `key:"cpu-quota"`
	CPUQuotaPeriod     time.Duration `key:"cpu-quota-period"` // default 100ms
	AllowedCPUs        string        `key:"allowed-cpus" check:"cpuset"`
	AllowedMemoryNodes string        `key:"allowed-memory-nodes" check:"cpuset"`

	IOWeight            *int         `key:"io-weight" min:"1" max:"10000"`
	IODeviceWeight      DeviceLimits `key:"io-device-weight"`
	IOReadBandwidthMax  DeviceLimits `key:"io-read-bandwidth-max"`
	IOWriteBandwidthMax DeviceLimits `key:"io-write-bandwidth-max"`
	IOReadIOPSMax       DeviceLimits `key:"io-read-iops-max"`
	IOWriteIOPSMax      DeviceLimits `key:"io-write-iops-max"`

	TasksMax *TasksMax `key:"tasks-max"`
}

// The enumerations. Each lists its values in enumValues, which decoding
// checks.

// ServiceType is [service] type.
type ServiceType string

// The service types.
const (
	ServiceSimple       ServiceType = "simple"
	ServiceExec         ServiceType = "exec"
	ServiceForking      ServiceType = "forking"
	ServiceOneshot      ServiceType = "oneshot"
	ServiceNotify       ServiceType = "notify"
	ServiceNotifyReload ServiceType = "notify-reload"
	ServiceIdle         ServiceType = "idle"
	ServiceDBus         ServiceType = "dbus"
)

func (ServiceType) enumValues() []string {
	return []string{"simple", "exec", "forking", "oneshot", "notify", "notify-reload", "idle", "dbus"}
}

// RestartPolicy is [service] restart.
type RestartPolicy string

// The restart policies.
const (
	RestartNo         RestartPolicy = "no"
	RestartOnSuccess  RestartPolicy = "on-success"
	RestartOnFailure  RestartPolicy = "on-failure"
	RestartOnAbnormal RestartPolicy = "on-abnormal"
	RestartOnWatchdog RestartPolicy = "on-watchdog"
	RestartOnAbort    RestartPolicy = "on-abort"
	RestartAlways     RestartPolicy = "always"
)

func (RestartPolicy) enumValues() []string {
	return []string{"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"}
}

// KillMode is kill-mode.
type KillMode string

// The kill modes.
const (
	KillControlGroup KillMode = "control-group"
	KillMixed        KillMode = "mixed"
	KillProcess      KillMode = "process"
	KillNone         KillMode = "none"
)

func (KillMode) enumValues() []string {
	return []string{"control-group", "mixed", "process", "none"}
}

// NotifyAccess is [service] notify-access.
type NotifyAccess string

// The notify-access values.
const (
	NotifyNone NotifyAccess = "none"
	NotifyMain NotifyAccess = "main"
	NotifyExec NotifyAccess = "exec"
	NotifyAll  NotifyAccess = "all"
)

func (NotifyAccess) enumValues() []string { return []string{"none", "main", "exec", "all"} }

// JobMode is a job mode as used by on-failure-job-mode.
type JobMode string

func (JobMode) enumValues() []string {
	return []string{"fail", "replace", "replace-irreversibly", "isolate", "flush", "ignore-dependencies", "ignore-requirements"}
}

// EmergencyAction is what the manager does on start-limit-hit, failure,
// success or job timeout.
type EmergencyAction string

func (EmergencyAction) enumValues() []string {
	return []string{"none", "reboot", "reboot-force", "reboot-immediate", "poweroff", "poweroff-force",
		"poweroff-immediate", "exit", "exit-force", "halt", "halt-force", "halt-immediate"}
}

// BindIPv6Only is [socket] bind-ipv6-only.
type BindIPv6Only string

func (BindIPv6Only) enumValues() []string { return []string{"default", "both", "ipv6-only"} }

// Verdict answers a held access: allow or deny.
type Verdict string

func (Verdict) enumValues() []string { return []string{"allow", "deny"} }

// setDefaults gives a section its defaults before any file is applied, so
// that files and drop-ins override them.
func (s *UnitSection) setDefaults() {
	s.DefaultDependencies = true
	s.StartLimitInterval = 10 * time.Second
	s.StartLimitBurst = 5
	s.JobTimeout = Infinity
	s.OnFailureJobMode = "replace"
	s.StartLimitAction, s.FailureAction, s.SuccessAction, s.JobTimeoutAction = "none", "none", "none", "none"
}

func (c *ExecContext) setDefaults() {
	c.UMask = 0o022
	c.StandardInput = StdIO{Kind: StdIONull}
	c.StandardOutput = StdIO{Kind: StdIOLog}
	c.StandardError = StdIO{Kind: StdIOInherit}
	c.IgnoreSIGPIPE = true
	c.RuntimeDirectoryMode, c.StateDirectoryMode, c.CacheDirectoryMode = 0o755, 0o755, 0o755
	c.LogsDirectoryMode, c.ConfigurationDirectoryMode = 0o755, 0o755
	c.RuntimeDirectoryPreserve = "no"
	c.TimeoutClean = Infinity
}

func (c *KillContext) setDefaults() {
	c.KillMode = KillControlGroup
	c.KillSignal = syscall.SIGTERM
	c.FinalKillSignal = syscall.SIGKILL
	c.WatchdogSignal = syscall.SIGABRT
	c.SendSIGKILL = true
}

func (s *ServiceSection) setDefaults() {
	s.Type = ServiceSimple
	s.Restart = RestartNo
	s.RestartSec = 100 * time.Millisecond
	s.RestartMaxDelay = Infinity
	s.TimeoutStart = 90 * time.Second
	s.TimeoutStop = 90 * time.Second
	s.RuntimeMax = Infinity
	s.GuessMainPID = true
	s.NotifyAccess = NotifyNone
	s.ExecContext.setDefaults()
	s.KillContext.setDefaults()
}

// afterKey makes timeout-sec set both timeouts.
func (s *ServiceSection) afterKey(key string) {
	if key == "timeout-sec" {
		s.TimeoutStart, s.TimeoutStop = s.Timeout, s.Timeout
	}
}

func (s *SocketSection) setDefaults() {
	s.SocketMode = 0o666
	s.DirectoryMode = 0o755
	s.BindIPv6Only = "default"
	s.Backlog = 4096
	s.MaxConnections = 64
	s.Timeout = 90 * time.Second
	s.ExecContext.setDefaults()
	s.KillContext.setDefaults()
}

func (s *MountSection) setDefaults() {
	s.DirectoryMode = 0o755
	s.Timeout = 90 * time.Second
	s.ExecContext.setDefaults()
	s.KillContext.setDefaults()
}

func (s *AutomountSection) setDefaults() { s.DirectoryMode = 0o755 }

func (s *ScopeSection) setDefaults() {
	s.TimeoutStop = 90 * time.Second
	s.RuntimeMax = Infinity
	s.KillContext.setDefaults()
}

func (s *SwapSection) setDefaults() { s.Timeout = 90 * time.Second }

func (s *PathSection) setDefaults() {
	s.DirectoryMode = 0o755
	s.TriggerLimitInterval = 2 * time.Second
	s.TriggerLimitBurst = 200
	s.HoldTimeout = 90 * time.Second
	s.HoldVerdict = "allow"
}

func (s *TimerSection) setDefaults() {
	s.Accuracy = time.Minute
	s.RemainAfterElapse = true
}

func (s *ResourcesSection) setDefaults() { s.CPUQuotaPeriod = 100 * time.Millisecond }
