package unitfile

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/calendar"
)

// Infinity is the duration that means "never" (systemd's "infinity"):
// a timeout of Infinity never fires.
const Infinity time.Duration = math.MaxInt64

// ParseDuration parses a unit file's time span with systemd's parse_sec
// rules (calendar.ParseTimespan is the one parser for both): components of
// a number with an optional fraction and a unit, us, ms, s, min, h, d, w,
// M (30.44 days), y (365.25 days) and their long forms ("1min 30s",
// "1h30min", "500 ms", "+5s"); a bare number is seconds; digits finer than
// a microsecond are dropped, not rounded; "infinity" gives Infinity.
//
// A span longer than a time.Duration holds (about 292 years, while systemd
// counts to 584,000) saturates to Infinity: a timeout that far out never
// fires either way.
func ParseDuration(s string) (time.Duration, error) {
	t, err := calendar.ParseTimespan(s)
	if err != nil {
		return 0, err
	}
	return durationOfTimespan(t), nil
}

// durationOfTimespan converts a timespan, saturating at Infinity.
func durationOfTimespan(t calendar.Timespan) time.Duration {
	if t == calendar.Infinity || t > calendar.Timespan(math.MaxInt64/int64(time.Microsecond)) {
		return Infinity
	}
	return time.Duration(t) * time.Microsecond
}

// FormatDuration renders d as systemd's format_timespan does ("1min 30s",
// "1.500000s", "infinity"), to the microsecond; ParseDuration reads it
// back.
func FormatDuration(d time.Duration) string {
	if d == Infinity {
		return "infinity"
	}
	if d < 0 {
		d = 0
	}
	return calendar.FormatTimespan(calendar.Timespan(d / time.Microsecond))
}

// durationFromTOML accepts a time span string, or a TOML integer or float
// counting seconds.
func durationFromTOML(raw any) (time.Duration, error) {
	switch v := raw.(type) {
	case string:
		return ParseDuration(v)
	case int64:
		if v < 0 || v > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("time span %d out of range", v)
		}
		return time.Duration(v) * time.Second, nil
	case float64:
		if v < 0 || math.IsNaN(v) || v*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("time span %v out of range", v)
		}
		if math.IsInf(v, 1) {
			return Infinity, nil
		}
		// To the microsecond, as a span written as a string.
		return time.Duration(v*float64(time.Second/time.Microsecond)) * time.Microsecond, nil
	}
	return 0, typeError("a time span (\"1min 30s\") or a number of seconds", raw)
}

// Size is an amount of memory or bytes: Bytes, or a percentage of the
// machine's total (where the key allows it), or no limit at all.
type Size struct {
	Bytes    uint64
	Percent  float64 // 0 < Percent <= 100 when given as "50%"
	Infinity bool
}

// String renders the size as it could be written in a unit file.
func (s Size) String() string {
	switch {
	case s.Infinity:
		return "infinity"
	case s.Percent > 0:
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatUint(s.Bytes, 10)
}

func sizeSuffix(c byte) (uint64, bool) {
	switch c {
	case 'B':
		return 1, true
	case 'K':
		return 1 << 10, true
	case 'M':
		return 1 << 20, true
	case 'G':
		return 1 << 30, true
	case 'T':
		return 1 << 40, true
	case 'P':
		return 1 << 50, true
	case 'E':
		return 1 << 60, true
	}
	return 0, false
}

// ParseSize parses a size with systemd's base-1024 suffixes B, K, M, G, T,
// P, E ("512M", "1.5K", "1G 512M"), a plain number of bytes, "infinity", or
// with allowPercent a percentage ("50%").
func ParseSize(s string, allowPercent bool) (Size, error) {
	in := strings.TrimSpace(s)
	switch {
	case in == "infinity":
		return Size{Infinity: true}, nil
	case in == "":
		return Size{}, fmt.Errorf("empty size")
	case strings.HasSuffix(in, "%"):
		if !allowPercent {
			return Size{}, fmt.Errorf("size %q: a percentage is not allowed here", s)
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(in[:len(in)-1]), 64)
		if err != nil || p <= 0 || p > 100 || math.IsNaN(p) {
			return Size{}, fmt.Errorf("size %q: percentage must be a number above 0 and at most 100", s)
		}
		return Size{Percent: p}, nil
	}
	var total uint64
	for _, field := range strings.Fields(in) {
		numEnd := len(field)
		mult := uint64(1)
		if m, ok := sizeSuffix(field[len(field)-1]); ok {
			mult, numEnd = m, len(field)-1
		}
		num := field[:numEnd]
		if num == "" || num[0] == '+' || num[0] == '-' {
			return Size{}, fmt.Errorf("size %q: expected a number with an optional suffix B, K, M, G, T, P, E", s)
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(num, "eExXpP_") {
			return Size{}, fmt.Errorf("size %q: expected a number with an optional suffix B, K, M, G, T, P, E", s)
		}
		var part uint64
		if !strings.Contains(num, ".") {
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil || (n != 0 && mult > math.MaxUint64/n) {
				return Size{}, fmt.Errorf("size %q: too large", s)
			}
			part = n * mult
		} else {
			v := f * float64(mult)
			if v >= math.MaxUint64 {
				return Size{}, fmt.Errorf("size %q: too large", s)
			}
			part = uint64(v)
		}
		if total > math.MaxUint64-part {
			return Size{}, fmt.Errorf("size %q: too large", s)
		}
		total += part
	}
	return Size{Bytes: total}, nil
}

func (s *Size) decodeValue(raw any, vc *valueCtx) error {
	switch v := raw.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("size must not be negative")
		}
		*s = Size{Bytes: uint64(v)}
		return nil
	case string:
		sz, err := ParseSize(v, vc.opts.percent)
		if err != nil {
			return err
		}
		*s = sz
		return nil
	}
	return typeError("a size (\"512M\") or a number of bytes", raw)
}

// TasksMax is a limit on the number of tasks: a count, a percentage of the
// system's limit, or no limit.
type TasksMax struct {
	Count    uint64
	Percent  float64
	Infinity bool
}

func (t *TasksMax) decodeValue(raw any, vc *valueCtx) error {
	switch v := raw.(type) {
	case int64:
		if v <= 0 {
			return fmt.Errorf("tasks-max must be positive")
		}
		*t = TasksMax{Count: uint64(v)}
		return nil
	case string:
		v = strings.TrimSpace(v)
		if v == "infinity" {
			*t = TasksMax{Infinity: true}
			return nil
		}
		if strings.HasSuffix(v, "%") {
			sz, err := ParseSize(v, true)
			if err != nil {
				return err
			}
			*t = TasksMax{Percent: sz.Percent}
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("expected a positive count, a percentage or \"infinity\", got %q", v)
		}
		*t = TasksMax{Count: n}
		return nil
	}
	return typeError("a count, a percentage or \"infinity\"", raw)
}

// Percent is a percentage such as a CPU quota ("150%" is one and a half CPUs).
type Percent float64

func (p *Percent) decodeValue(raw any, vc *valueCtx) error {
	s, ok := raw.(string)
	if !ok || !strings.HasSuffix(strings.TrimSpace(s), "%") {
		return typeError("a percentage like \"20%\"", raw)
	}
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(strings.TrimSpace(s[:len(s)-1]), 64)
	if err != nil || f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("expected a positive percentage, got %q", s)
	}
	*p = Percent(f)
	return nil
}

// ParseSignal parses a signal by name ("SIGTERM", "TERM", "RTMIN+3") or by
// number.
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n >= 65 {
			return 0, fmt.Errorf("signal number %d out of range 1..64", n)
		}
		return syscall.Signal(n), nil
	}
	name := s
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	for _, base := range []struct {
		name string
		num  int
	}{{"SIGRTMIN", 34}, {"SIGRTMAX", 64}} {
		if rest, ok := strings.CutPrefix(name, base.name); ok {
			if rest == "" {
				return syscall.Signal(base.num), nil
			}
			off, err := strconv.Atoi(rest)
			if err == nil && base.num+off >= 34 && base.num+off <= 64 {
				return syscall.Signal(base.num + off), nil
			}
		}
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// SignalName gives a signal's name as written in unit files ("SIGTERM").
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	if sig >= 34 && sig <= 64 {
		return fmt.Sprintf("SIGRTMIN+%d", int(sig)-34)
	}
	return strconv.Itoa(int(sig))
}

func signalFromTOML(raw any) (syscall.Signal, error) {
	switch v := raw.(type) {
	case string:
		return ParseSignal(v)
	case int64:
		if v <= 0 || v >= 65 {
			return 0, fmt.Errorf("signal number %d out of range 1..64", v)
		}
		return syscall.Signal(v), nil
	}
	return 0, typeError("a signal name (\"SIGTERM\") or number", raw)
}

// ExitStatusSet is a set of exit codes (0..255) and terminating signals,
// as in success-exit-status = "0 1 SIGHUP".
type ExitStatusSet struct {
	Codes   []int
	Signals []syscall.Signal
}

// Empty reports whether the set has no member.
func (e ExitStatusSet) Empty() bool { return len(e.Codes) == 0 && len(e.Signals) == 0 }

// HasCode reports whether exit code c is in the set.
func (e ExitStatusSet) HasCode(c int) bool {
	for _, x := range e.Codes {
		if x == c {
			return true
		}
	}
	return false
}

// HasSignal reports whether signal s is in the set.
func (e ExitStatusSet) HasSignal(s syscall.Signal) bool {
	for _, x := range e.Signals {
		if x == s {
			return true
		}
	}
	return false
}

func (e *ExitStatusSet) add(word string) error {
	if n, err := strconv.Atoi(word); err == nil {
		if n < 0 || n > 255 {
			return fmt.Errorf("exit status %d out of range 0..255", n)
		}
		e.Codes = append(e.Codes, n)
		return nil
	}
	sig, err := ParseSignal(word)
	if err != nil {
		return fmt.Errorf("expected an exit status 0..255 or a signal name, got %q", word)
	}
	e.Signals = append(e.Signals, sig)
	return nil
}

func (e *ExitStatusSet) decodeValue(raw any, vc *valueCtx) error {
	var words []string
	switch v := raw.(type) {
	case string:
		words = strings.Fields(v)
	case int64:
		words = []string{strconv.FormatInt(v, 10)}
	case []any:
		for _, x := range v {
			switch w := x.(type) {
			case string:
				words = append(words, w)
			case int64:
				words = append(words, strconv.FormatInt(w, 10))
			default:
				return typeError("exit statuses and signal names", x)
			}
		}
	default:
		return typeError("exit statuses and signal names (\"0 1 SIGHUP\" or an array)", raw)
	}
	if len(words) == 0 {
		*e = ExitStatusSet{}
		return nil
	}
	for _, w := range words {
		if err := e.add(w); err != nil {
			return err
		}
	}
	return nil
}

// Mode is a file mode or umask, written in octal ("0022") or as a TOML
// integer (preferably an octal literal, 0o022).
type Mode uint32

// String renders the mode in four octal digits.
func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

func (m *Mode) decodeValue(raw any, vc *valueCtx) error {
	switch v := raw.(type) {
	case string:
		n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("expected an octal mode like \"0755\", got %q", v)
		}
		*m = Mode(n)
		return nil
	case int64:
		if v < 0 || v > 0o7777 {
			return fmt.Errorf("mode %#o out of range 0..07777", v)
		}
		*m = Mode(v)
		return nil
	}
	return typeError("an octal mode like \"0755\"", raw)
}

// validUserName checks a user or group as systemd does in its relaxed
// mode: a name of [A-Za-z0-9_.-] not starting with a digit or '-', at most
// 256 characters, or a numeric ID other than 65535 and 4294967295.
func validUserName(s string) error {
	if s == "" {
		return fmt.Errorf("empty user or group name")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if n == 65535 || n == 4294967295 {
			return fmt.Errorf("user or group ID %d is reserved", n)
		}
		return nil
	}
	if len(s) > 256 {
		return fmt.Errorf("user or group name %q too long", s)
	}
	if c := s[0]; c >= '0' && c <= '9' || c == '-' {
		return fmt.Errorf("invalid user or group name %q: must not start with %q", s, c)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == '$' && i == len(s)-1) {
			return fmt.Errorf("invalid user or group name %q: character %q not allowed", s, c)
		}
	}
	return nil
}

// capabilityNames lists Linux capabilities by number, lower case without
// the "cap_" prefix.
func capabilityNames() [41]string {
	return [41]string{"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
		"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
		"net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot",
		"sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
		"sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
		"mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read",
		"perfmon", "bpf", "checkpoint_restore"}
}

// ParseCapability gives the number and canonical name ("CAP_NET_ADMIN") of
// a capability written with or without "CAP_", in any case, or by number.
func ParseCapability(s string) (int, string, error) {
	names := capabilityNames()
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < 64 {
		if n < len(names) {
			return n, "CAP_" + strings.ToUpper(names[n]), nil
		}
		return n, strconv.Itoa(n), nil
	}
	low := strings.TrimPrefix(strings.ToLower(s), "cap_")
	for i, n := range names {
		if n == low {
			return i, "CAP_" + strings.ToUpper(n), nil
		}
	}
	return 0, "", fmt.Errorf("unknown capability %q", s)
}

// Capabilities is a set of capabilities; with Invert it means every
// capability except Names (systemd's "~CAP_X" form).
type Capabilities struct {
	Names  []string // canonical "CAP_..." names
	Invert bool
}

func (c *Capabilities) decodeValue(raw any, vc *valueCtx) error {
	words, err := stringOrList(raw, true, "capability names")
	if err != nil {
		return err
	}
	if len(words) == 0 {
		*c = Capabilities{}
		return nil
	}
	invert := false
	if strings.HasPrefix(words[0], "~") {
		invert = true
		words[0] = strings.TrimPrefix(words[0], "~")
		if words[0] == "" {
			words = words[1:]
		}
	}
	if invert != c.Invert {
		*c = Capabilities{Invert: invert}
	}
	for _, w := range words {
		_, name, err := ParseCapability(w)
		if err != nil {
			return err
		}
		c.Names = append(c.Names, name)
	}
	return nil
}

// Limit is one resource limit (setrlimit): soft and hard values, where
// RlimitInfinity means unlimited.
type Limit struct {
	Soft, Hard uint64
}

// RlimitInfinity is the unlimited value of a Limit.
const RlimitInfinity = ^uint64(0)

// Limits maps a resource name ("nofile", "nproc", "core", ...) to its limit.
type Limits map[string]Limit

// RlimitResource gives the setrlimit resource number of a limit's name.
func RlimitResource(name string) (int, bool) {
	switch name {
	case "cpu":
		return unix.RLIMIT_CPU, true
	case "fsize":
		return unix.RLIMIT_FSIZE, true
	case "data":
		return unix.RLIMIT_DATA, true
	case "stack":
		return unix.RLIMIT_STACK, true
	case "core":
		return unix.RLIMIT_CORE, true
	case "rss":
		return unix.RLIMIT_RSS, true
	case "nproc":
		return unix.RLIMIT_NPROC, true
	case "nofile":
		return unix.RLIMIT_NOFILE, true
	case "memlock":
		return unix.RLIMIT_MEMLOCK, true
	case "as":
		return unix.RLIMIT_AS, true
	case "locks":
		return unix.RLIMIT_LOCKS, true
	case "sigpending":
		return unix.RLIMIT_SIGPENDING, true
	case "msgqueue":
		return unix.RLIMIT_MSGQUEUE, true
	case "nice":
		return unix.RLIMIT_NICE, true
	case "rtprio":
		return unix.RLIMIT_RTPRIO, true
	case "rttime":
		return unix.RLIMIT_RTTIME, true
	}
	return 0, false
}

func limitNames() []string {
	return []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue",
		"nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}
}

// parseLimitValue parses one side of a limit for resource name: a number,
// "infinity", a size for the byte-counting limits, a time span for cpu
// (seconds) and rttime (microseconds).
func parseLimitValue(name, s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return RlimitInfinity, nil
	}
	switch name {
	case "as", "core", "data", "fsize", "memlock", "msgqueue", "rss", "stack":
		sz, err := ParseSize(s, false)
		if err != nil {
			return 0, err
		}
		return sz.Bytes, nil
	case "cpu", "rttime":
		d, err := ParseDuration(s)
		if err != nil {
			return 0, err
		}
		if d == Infinity {
			return RlimitInfinity, nil
		}
		if name == "cpu" {
			return uint64((d + time.Second - 1) / time.Second), nil
		}
		return uint64(d / time.Microsecond), nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("expected a number or \"infinity\", got %q", s)
	}
	return n, nil
}

// ParseLimit parses a limit written as "VALUE" (soft and hard alike) or
// "SOFT:HARD".
func ParseLimit(name, s string) (Limit, error) {
	soft, hard, both := strings.Cut(s, ":")
	sv, err := parseLimitValue(name, soft)
	if err != nil {
		return Limit{}, err
	}
	if !both {
		return Limit{Soft: sv, Hard: sv}, nil
	}
	hv, err := parseLimitValue(name, hard)
	if err != nil {
		return Limit{}, err
	}
	if sv > hv {
		return Limit{}, fmt.Errorf("soft limit %s above hard limit %s", soft, hard)
	}
	return Limit{Soft: sv, Hard: hv}, nil
}

func (l *Limits) decodeValue(raw any, vc *valueCtx) error {
	table, ok := raw.(map[string]any)
	if !ok {
		return typeError("a table of limits ([service.limits] nofile = 65536)", raw)
	}
	if *l == nil {
		*l = Limits{}
	}
	for _, name := range sortedKeys(table) {
		if _, ok := RlimitResource(name); !ok {
			vc.subProblem(name, unknownKeyMessage(name, limitNames()))
			continue
		}
		var lim Limit
		var err error
		switch v := table[name].(type) {
		case int64:
			if v < 0 {
				err = fmt.Errorf("limit must not be negative")
			}
			lim = Limit{Soft: uint64(v), Hard: uint64(v)}
		case string:
			lim, err = ParseLimit(name, v)
		default:
			err = typeError("a number, \"SOFT:HARD\" or \"infinity\"", v)
		}
		if err != nil {
			vc.subProblem(name, err.Error())
			continue
		}
		(*l)[name] = lim
	}
	return nil
}

// StdIOKind says where a standard stream of a process goes.
type StdIOKind string

// The kinds of standard input, output and error.
const (
	StdIONull       StdIOKind = "null"
	StdIOInherit    StdIOKind = "inherit"     // output and error: the same as standard input
	StdIOTTY        StdIOKind = "tty"         // tty-path
	StdIOTTYForce   StdIOKind = "tty-force"   // input only
	StdIOTTYFail    StdIOKind = "tty-fail"    // input only
	StdIOLog        StdIOKind = "log"         // the manager's log (alias "journal")
	StdIOLogConsole StdIOKind = "log+console" // log and echo to the console (alias "journal+console")
	StdIOFile       StdIOKind = "file"        // file:PATH, opened read-write (input: read)
	StdIOAppend     StdIOKind = "append"      // append:PATH
	StdIOTruncate   StdIOKind = "truncate"    // truncate:PATH
	StdIOSocket     StdIOKind = "socket"      // the connection of an accept=true socket
)

// StdIO is the configured destination of one standard stream.
type StdIO struct {
	Kind StdIOKind
	Path string // for file, append, truncate
}

// String renders the value as written in a unit file.
func (s StdIO) String() string {
	if s.Path != "" {
		return string(s.Kind) + ":" + s.Path
	}
	return string(s.Kind)
}

// ParseStdIO parses a standard-input ("input" true) or standard-output/error
// value.
func ParseStdIO(s string, input bool) (StdIO, error) {
	kind, p, hasPath := strings.Cut(s, ":")
	k := StdIOKind(kind)
	switch k {
	case "journal":
		k = StdIOLog
	case "journal+console":
		k = StdIOLogConsole
	}
	var allowed []StdIOKind
	if input {
		allowed = []StdIOKind{StdIONull, StdIOTTY, StdIOTTYForce, StdIOTTYFail, StdIOFile, StdIOSocket}
	} else {
		allowed = []StdIOKind{StdIOInherit, StdIONull, StdIOTTY, StdIOLog, StdIOLogConsole, StdIOFile, StdIOAppend, StdIOTruncate, StdIOSocket}
	}
	ok := false
	for _, a := range allowed {
		ok = ok || a == k
	}
	if !ok {
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = string(a)
			if a == StdIOFile || a == StdIOAppend || a == StdIOTruncate {
				names[i] += ":PATH"
			}
		}
		return StdIO{}, fmt.Errorf("expected one of %s, got %q", strings.Join(names, ", "), s)
	}
	needsPath := k == StdIOFile || k == StdIOAppend || k == StdIOTruncate
	if needsPath != hasPath {
		if needsPath {
			return StdIO{}, fmt.Errorf("%q needs a path: %s:/absolute/path", s, k)
		}
		return StdIO{}, fmt.Errorf("%q takes no path", k)
	}
	if needsPath && !strings.HasPrefix(p, "/") {
		return StdIO{}, fmt.Errorf("path %q in %q is not absolute", p, s)
	}
	return StdIO{Kind: k, Path: p}, nil
}

func (s *StdIO) decodeValue(raw any, vc *valueCtx) error {
	str, ok := raw.(string)
	if !ok {
		return typeError("a string such as \"null\", \"log\" or \"file:/path\"", raw)
	}
	str, err := vc.expand(str)
	if err != nil {
		return err
	}
	v, err := ParseStdIO(str, vc.key == "standard-input")
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Environment is a list of "NAME=value" assignments in the order given; a
// later assignment of a name replaces the earlier one in place.
type Environment []string

// Get gives the value of name and whether it is set.
func (e Environment) Get(name string) (string, bool) {
	for _, kv := range e {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

func (e *Environment) set(name, value string) {
	for i, kv := range *e {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			(*e)[i] = name + "=" + value
			return
		}
	}
	*e = append(*e, name+"="+value)
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (e *Environment) decodeValue(raw any, vc *valueCtx) error {
	assign := func(name, value string) error {
		if !validEnvName(name) {
			return fmt.Errorf("invalid environment variable name %q", name)
		}
		value, err := vc.expand(value)
		if err != nil {
			return err
		}
		e.set(name, value)
		return nil
	}
	assignWord := func(w string) error {
		name, value, ok := strings.Cut(w, "=")
		if !ok {
			return fmt.Errorf("expected NAME=value, got %q", w)
		}
		return assign(name, value)
	}
	switch v := raw.(type) {
	case map[string]any:
		if len(v) == 0 {
			*e = nil
		}
		for _, name := range sortedKeys(v) {
			var value string
			switch x := v[name].(type) {
			case string:
				value = x
			case int64, float64, bool:
				value = fmt.Sprint(x)
			default:
				vc.subProblem(name, typeError("a string", x).Error())
				continue
			}
			if err := assign(name, value); err != nil {
				vc.subProblem(name, err.Error())
			}
		}
		return nil
	case string:
		words, err := SplitCommandLine(v)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			*e = nil
		}
		for _, w := range words {
			if err := assignWord(w); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if len(v) == 0 {
			*e = nil
		}
		for _, x := range v {
			w, ok := x.(string)
			if !ok {
				return typeError("\"NAME=value\" strings", x)
			}
			if err := assignWord(w); err != nil {
				return err
			}
		}
		return nil
	}
	return typeError("a table { NAME = \"value\" } or an array of \"NAME=value\"", raw)
}

// EnvironmentFile is a file of NAME=value lines read before a process
// starts; an Optional one may be missing ("-/etc/default/foo").
type EnvironmentFile struct {
	Path     string
	Optional bool
}

// EnvironmentFiles is the list of environment files in the order given.
type EnvironmentFiles []EnvironmentFile

func (f *EnvironmentFiles) decodeValue(raw any, vc *valueCtx) error {
	items, err := stringOrList(raw, false, "paths")
	if err != nil {
		return err
	}
	if len(items) == 0 {
		*f = nil
		return nil
	}
	for _, it := range items {
		it, err := vc.expand(it)
		if err != nil {
			return err
		}
		ef := EnvironmentFile{Path: it}
		if p, ok := strings.CutPrefix(it, "-"); ok {
			ef = EnvironmentFile{Path: p, Optional: true}
		}
		if !strings.HasPrefix(ef.Path, "/") {
			return fmt.Errorf("environment file %q is not an absolute path", ef.Path)
		}
		*f = append(*f, ef)
	}
	return nil
}

// WorkingDirectory is a process's working directory: an absolute path, or
// the user's home ("~"); an Optional one may be missing ("-/srv/x").
type WorkingDirectory struct {
	Path     string
	Home     bool
	Optional bool
}

func (w *WorkingDirectory) decodeValue(raw any, vc *valueCtx) error {
	s, ok := raw.(string)
	if !ok {
		return typeError("an absolute path or \"~\"", raw)
	}
	s, err := vc.expand(s)
	if err != nil {
		return err
	}
	var wd WorkingDirectory
	if p, ok := strings.CutPrefix(s, "-"); ok {
		wd.Optional, s = true, p
	}
	switch {
	case s == "":
		*w = WorkingDirectory{}
		return nil
	case s == "~":
		wd.Home = true
	case strings.HasPrefix(s, "/"):
		wd.Path = s
	default:
		return fmt.Errorf("working directory %q is neither an absolute path nor \"~\"", s)
	}
	*w = wd
	return nil
}

// Delegate hands the unit's cgroup subtree to its processes: all
// controllers if Enabled with no Controllers, else those named.
type Delegate struct {
	Enabled     bool
	Controllers []string
}

func cgroupControllers() []string {
	return []string{"cpu", "cpuacct", "cpuset", "io", "blkio", "memory", "devices", "pids", "bpf-firewall", "bpf-devices", "bpf-foreign", "bpf-socket-bind", "bpf-restrict-network-interfaces", "hugetlb", "rdma", "misc"}
}

func (d *Delegate) decodeValue(raw any, vc *valueCtx) error {
	if b, ok := raw.(bool); ok {
		*d = Delegate{Enabled: b}
		return nil
	}
	names, err := stringOrList(raw, true, "true, false or controller names")
	if err != nil {
		return err
	}
	if len(names) == 0 {
		*d = Delegate{}
		return nil
	}
	d.Enabled = true
	for _, n := range names {
		known := false
		for _, c := range cgroupControllers() {
			known = known || c == n
		}
		if !known {
			return fmt.Errorf("unknown cgroup controller %q (known: %s)", n, strings.Join(cgroupControllers(), ", "))
		}
		d.Controllers = append(d.Controllers, n)
	}
	return nil
}

// DeviceLimit is a per-device I/O limit or weight.
type DeviceLimit struct {
	Device string // a device node or a file on the device's file system
	Value  Size
}

// DeviceLimits lists per-device I/O settings, written as a table
// { "/dev/vda" = "10M" } or an array of "PATH VALUE" strings.
type DeviceLimits []DeviceLimit

func (dl *DeviceLimits) decodeValue(raw any, vc *valueCtx) error {
	add := func(dev string, v any) error {
		if !strings.HasPrefix(dev, "/") {
			return fmt.Errorf("device %q is not an absolute path", dev)
		}
		var sz Size
		if err := sz.decodeValue(v, vc); err != nil {
			return err
		}
		*dl = append(*dl, DeviceLimit{Device: dev, Value: sz})
		return nil
	}
	switch v := raw.(type) {
	case map[string]any:
		if len(v) == 0 {
			*dl = nil
		}
		for _, dev := range sortedKeys(v) {
			if err := add(dev, v[dev]); err != nil {
				vc.subProblem(dev, err.Error())
			}
		}
		return nil
	case []any:
		if len(v) == 0 {
			*dl = nil
		}
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return typeError("\"PATH VALUE\" strings", x)
			}
			f := strings.Fields(s)
			if len(f) != 2 {
				return fmt.Errorf("expected \"PATH VALUE\", got %q", s)
			}
			if err := add(f[0], f[1]); err != nil {
				return err
			}
		}
		return nil
	}
	return typeError("a table { \"/dev/vda\" = \"10M\" } or an array of \"PATH VALUE\"", raw)
}

// validCPUSet checks a cpuset list such as "0-3,5 7".
func validCPUSet(s string) error {
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || b < a {
			return fmt.Errorf("invalid CPU or node list %q at %q", s, part)
		}
	}
	return nil
}

// stringOrList accepts a string (split on white space if split is true,
// else one item) or an array of strings; an empty array gives no items.
func stringOrList(raw any, split bool, what string) ([]string, error) {
	switch v := raw.(type) {
	case string:
		if split {
			return strings.Fields(v), nil
		}
		if v == "" {
			return nil, nil
		}
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, typeError("an array of strings ("+what+")", x)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, typeError("a string or an array of strings ("+what+")", raw)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describeTOML names the TOML type and value of raw for error messages.
func describeTOML(raw any) string {
	switch v := raw.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", raw)
}

func typeError(expected string, raw any) error {
	return errors.New("expected " + expected + ", got " + describeTOML(raw))
}
