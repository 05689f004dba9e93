package unitfile

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "1min 30s", want: 90 * time.Second},
		{in: "1min30s", want: 90 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "2h", want: 2 * time.Hour},
		{in: "1.5s", want: 1500 * time.Millisecond},
		{in: ".5s", want: 500 * time.Millisecond},
		{in: "5", want: 5 * time.Second},
		{in: " 10 s ", want: 10 * time.Second},
		{in: "1d 2h 3min 4s 5ms 6us", want: 26*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond + 6*time.Microsecond},
		{in: "1w", want: 7 * 24 * time.Hour},
		{in: "1M", want: 2629800 * time.Second}, // systemd's USEC_PER_MONTH, 30.44 days
		{in: "1 month", want: 2629800 * time.Second},
		{in: "1m", want: time.Minute},
		{in: "3 minutes", want: 3 * time.Minute},
		{in: "1y", want: time.Duration(365.25 * 24 * float64(time.Hour))},
		{in: "100µs", want: 100 * time.Microsecond},
		{in: "0", want: 0},
		{in: "infinity", want: Infinity},
		{in: "", bad: true},
		{in: "   ", bad: true},
		{in: "-5s", bad: true},
		{in: "5 parsecs", bad: true},
		{in: "1.2.3s", bad: true},
		{in: "s", bad: true},
		{in: "99999999999999999999s", bad: true},
		{in: "inf", bad: true},
		// systemd's parse_sec, where the old parser differed.
		{in: "+5s", want: 5 * time.Second},
		{in: "5ns", bad: true},
		{in: "5 nsec", bad: true},
		{in: "0.0000019s", want: time.Microsecond}, // finer digits are dropped, not rounded
		{in: "1.9999999ms", want: 1999 * time.Microsecond},
		{in: "1h 30min", want: 90 * time.Minute},
		{in: "1h30min", want: 90 * time.Minute},
		{in: "1.5min", want: 90 * time.Second},
		{in: "2 h 1 s", want: 2*time.Hour + time.Second},
		{in: "1y 1M", want: 31557600*time.Second + 2629800*time.Second},
		{in: "infinity ", want: Infinity},
		{in: "infinity 5s", bad: true},
		{in: "5s-", bad: true},
		// Beyond what a time.Duration holds (~292 years): never.
		{in: "300y", want: Infinity},
		{in: "1000y", want: Infinity},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, d := range []time.Duration{0, 90 * time.Second, 26*time.Hour + 5*time.Millisecond, 1500 * time.Millisecond, 2629800 * time.Second, Infinity} {
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Errorf("ParseDuration(FormatDuration(%v)=%q) = %v, %v", d, FormatDuration(d), back, err)
		}
	}
	if d, err := durationFromTOML(int64(30)); err != nil || d != 30*time.Second {
		t.Errorf("TOML integer 30 = %v, %v", d, err)
	}
	if d, err := durationFromTOML(1.5); err != nil || d != 1500*time.Millisecond {
		t.Errorf("TOML float 1.5 = %v, %v", d, err)
	}
	if _, err := durationFromTOML(int64(-1)); err == nil {
		t.Error("negative TOML integer accepted")
	}
	if _, err := durationFromTOML(true); err == nil || !strings.Contains(err.Error(), "got boolean true") {
		t.Errorf("boolean accepted or badly reported: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		percent bool
		want    Size
		bad     bool
	}{
		{in: "512M", want: Size{Bytes: 512 << 20}},
		{in: "1G", want: Size{Bytes: 1 << 30}},
		{in: "1.5K", want: Size{Bytes: 1536}},
		{in: "1G 512M", want: Size{Bytes: 1<<30 + 512<<20}},
		{in: "4096", want: Size{Bytes: 4096}},
		{in: "10B", want: Size{Bytes: 10}},
		{in: "2T", want: Size{Bytes: 2 << 40}},
		{in: "infinity", want: Size{Infinity: true}},
		{in: "50%", percent: true, want: Size{Percent: 50}},
		{in: "12.5%", percent: true, want: Size{Percent: 12.5}},
		{in: "50%", bad: true},
		{in: "150%", percent: true, bad: true},
		{in: "0%", percent: true, bad: true},
		{in: "", bad: true},
		{in: "-1M", bad: true},
		{in: "1Q", bad: true},
		{in: "1e3", bad: true},
		{in: "M", bad: true},
		{in: "16E", bad: true},
		{in: "99999999999999999999", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in, tt.percent)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseSize(%q) = %+v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		bad  bool
	}{
		{in: "SIGTERM", want: syscall.SIGTERM},
		{in: "TERM", want: syscall.SIGTERM},
		{in: "SIGKILL", want: syscall.SIGKILL},
		{in: "HUP", want: syscall.SIGHUP},
		{in: "9", want: syscall.SIGKILL},
		{in: "RTMIN", want: 34},
		{in: "SIGRTMIN+3", want: 37},
		{in: "RTMAX", want: 64},
		{in: "RTMAX-1", want: 63},
		{in: "0", bad: true},
		{in: "65", bad: true},
		{in: "SIGFOO", bad: true},
		{in: "sigterm", bad: true},
		{in: "RTMIN+40", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseSignal(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if SignalName(syscall.SIGTERM) != "SIGTERM" || SignalName(37) != "SIGRTMIN+3" {
		t.Errorf("SignalName: %q %q", SignalName(syscall.SIGTERM), SignalName(37))
	}
}

func TestExitStatusSet(t *testing.T) {
	tests := []struct {
		raw  any
		want ExitStatusSet
		bad  string
	}{
		{raw: "0 1 SIGHUP", want: ExitStatusSet{Codes: []int{0, 1}, Signals: []syscall.Signal{syscall.SIGHUP}}},
		{raw: []any{int64(75), "TERM"}, want: ExitStatusSet{Codes: []int{75}, Signals: []syscall.Signal{syscall.SIGTERM}}},
		{raw: int64(3), want: ExitStatusSet{Codes: []int{3}}},
		{raw: "256", bad: "out of range"},
		{raw: "FOO", bad: "expected an exit status"},
		{raw: true, bad: "got boolean"},
	}
	for _, tt := range tests {
		var e ExitStatusSet
		err := e.decodeValue(tt.raw, &valueCtx{})
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("decode %v: %v, want error %q", tt.raw, err, tt.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(e, tt.want) {
			t.Errorf("decode %v = %+v, %v; want %+v", tt.raw, e, err, tt.want)
		}
	}
	e := ExitStatusSet{Codes: []int{0}, Signals: []syscall.Signal{syscall.SIGHUP}}
	if !e.HasCode(0) || e.HasCode(1) || !e.HasSignal(syscall.SIGHUP) || e.HasSignal(syscall.SIGTERM) || e.Empty() {
		t.Error("ExitStatusSet membership wrong")
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		name, in string
		want     Limit
		bad      bool
	}{
		{"nofile", "1024:4096", Limit{1024, 4096}, false},
		{"nofile", "65536", Limit{65536, 65536}, false},
		{"nofile", "infinity", Limit{RlimitInfinity, RlimitInfinity}, false},
		{"nofile", "1024:infinity", Limit{1024, RlimitInfinity}, false},
		{"memlock", "64M", Limit{64 << 20, 64 << 20}, false},
		{"cpu", "1min", Limit{60, 60}, false},
		{"rttime", "1ms", Limit{1000, 1000}, false},
		{"nofile", "4096:1024", Limit{}, true},
		{"nofile", "lots", Limit{}, true},
		{"nproc", "1K", Limit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.name, tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseLimit(%s, %q) = %+v, want error", tt.name, tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLimit(%s, %q) = %+v, %v; want %+v", tt.name, tt.in, got, err, tt.want)
		}
	}
	for _, n := range limitNames() {
		if _, ok := RlimitResource(n); !ok {
			t.Errorf("limit %q has no resource number", n)
		}
	}
}

func TestParseStdIO(t *testing.T) {
	tests := []struct {
		in    string
		input bool
		want  StdIO
		bad   bool
	}{
		{in: "null", want: StdIO{Kind: StdIONull}},
		{in: "journal", want: StdIO{Kind: StdIOLog}},
		{in: "journal+console", want: StdIO{Kind: StdIOLogConsole}},
		{in: "file:/var/log/x", want: StdIO{Kind: StdIOFile, Path: "/var/log/x"}},
		{in: "append:/var/log/x", want: StdIO{Kind: StdIOAppend, Path: "/var/log/x"}},
		{in: "truncate:/tmp/o", want: StdIO{Kind: StdIOTruncate, Path: "/tmp/o"}},
		{in: "tty", input: true, want: StdIO{Kind: StdIOTTY}},
		{in: "file:/etc/in", input: true, want: StdIO{Kind: StdIOFile, Path: "/etc/in"}},
		{in: "log", input: true, bad: true},
		{in: "append:/x", input: true, bad: true},
		{in: "file:relative", bad: true},
		{in: "file", bad: true},
		{in: "null:/x", bad: true},
		{in: "syslog", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseStdIO(tt.in, tt.input)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseStdIO(%q, %v) = %+v, want error", tt.in, tt.input, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseStdIO(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestSmallValues(t *testing.T) {
	var m Mode
	if err := m.decodeValue("0022", &valueCtx{}); err != nil || m != 0o22 {
		t.Errorf("mode \"0022\" = %v, %v", m, err)
	}
	if err := m.decodeValue(int64(0o750), &valueCtx{}); err != nil || m != 0o750 {
		t.Errorf("mode 0o750 = %v, %v", m, err)
	}
	for _, bad := range []any{"0999", "rwx", int64(0o17777), int64(-1)} {
		if err := m.decodeValue(bad, &valueCtx{}); err == nil {
			t.Errorf("mode %v accepted", bad)
		}
	}
	for _, ok := range []string{"root", "www-data", "_apt", "1000", "a.b", "machine$"} {
		if err := validUserName(ok); err != nil {
			t.Errorf("user %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "9lives", "a b", "65535", "4294967295", "üser"} {
		if err := validUserName(bad); err == nil {
			t.Errorf("user %q accepted", bad)
		}
	}
	for in, want := range map[string]string{"CAP_NET_ADMIN": "CAP_NET_ADMIN", "net_admin": "CAP_NET_ADMIN", "cap_sys_admin": "CAP_SYS_ADMIN", "0": "CAP_CHOWN", "40": "CAP_CHECKPOINT_RESTORE"} {
		if _, got, err := ParseCapability(in); err != nil || got != want {
			t.Errorf("ParseCapability(%q) = %q, %v", in, got, err)
		}
	}
	if _, _, err := ParseCapability("CAP_FLY"); err == nil {
		t.Error("CAP_FLY accepted")
	}
	var caps Capabilities
	if err := caps.decodeValue("~CAP_SYS_ADMIN net_raw", &valueCtx{}); err != nil || !caps.Invert || !reflect.DeepEqual(caps.Names, []string{"CAP_SYS_ADMIN", "CAP_NET_RAW"}) {
		t.Errorf("capabilities = %+v, %v", caps, err)
	}
	for _, ok := range []string{"0-3", "0-3,5 7", "1"} {
		if err := validCPUSet(ok); err != nil {
			t.Errorf("cpuset %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"3-1", "a", "1-", "-"} {
		if err := validCPUSet(bad); err == nil {
			t.Errorf("cpuset %q accepted", bad)
		}
	}
	for _, ok := range []string{"/run/foo.sock", "@abstract", "80", "0.0.0.0:8080", "[::1]:53", "vsock:2:1234"} {
		if err := checkListenAddress(ok, true); err != nil {
			t.Errorf("listen %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"relative.sock", "70000", "::1:53", "host:", ":80", "@"} {
		if err := checkListenAddress(bad, true); err == nil {
			t.Errorf("listen %q accepted", bad)
		}
	}
	var env Environment
	if err := env.decodeValue(`A=1 B="two words" C=$HOME`, &valueCtx{}); err != nil || !reflect.DeepEqual(env, Environment{"A=1", "B=two words", "C=$HOME"}) {
		t.Errorf("environment = %q, %v", env, err)
	}
	if err := env.decodeValue([]any{"A=3"}, &valueCtx{}); err != nil || !reflect.DeepEqual(env, Environment{"A=3", "B=two words", "C=$HOME"}) {
		t.Errorf("environment override = %q, %v", env, err)
	}
	if v, ok := env.Get("B"); !ok || v != "two words" {
		t.Errorf("Get(B) = %q, %v", v, ok)
	}
	if err := env.decodeValue([]any{"NOEQUALS"}, &valueCtx{}); err == nil {
		t.Error("environment without '=' accepted")
	}
	var d Delegate
	if err := d.decodeValue([]any{"cpu", "memory"}, &valueCtx{}); err != nil || !d.Enabled || len(d.Controllers) != 2 {
		t.Errorf("delegate = %+v, %v", d, err)
	}
	if err := d.decodeValue([]any{"gpu"}, &valueCtx{}); err == nil {
		t.Error("delegate gpu accepted")
	}
	var tm TasksMax
	for raw, want := range map[any]TasksMax{int64(50): {Count: 50}, "50": {Count: 50}, "10%": {Percent: 10}, "infinity": {Infinity: true}} {
		if err := tm.decodeValue(raw, &valueCtx{}); err != nil || tm != want {
			t.Errorf("tasks-max %v = %+v, %v", raw, tm, err)
		}
	}
}

func TestEditDistanceAndNearest(t *testing.T) {
	tests := []struct {
		a, b string
		d    int
	}{
		{"restart-secs", "restart-sec", 1},
		{"restart-sce", "restart-sec", 1}, // swap
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"same", "same", 0},
	}
	for _, tt := range tests {
		if d := editDistance(tt.a, tt.b); d != tt.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, d, tt.d)
		}
	}
	if s, ok := Nearest("exec-strat", []string{"exec-start", "exec-stop", "type"}); !ok || s != "exec-start" {
		t.Errorf("Nearest(exec-strat) = %q, %v", s, ok)
	}
	if s, ok := Nearest("completely-different", []string{"exec-start", "type"}); ok {
		t.Errorf("nearest suggested %q for an unrelated word", s)
	}
}
