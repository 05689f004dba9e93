package pid1

import (
	"bytes"
	"strings"
	"testing"

	"vigil/init/cmdline"
	"vigil/units"
)

func TestParseLogLevel(t *testing.T) {
	for in, want := range map[string]logLevel{
		"emerg": levelEmerg, "0": levelEmerg, "alert": levelAlert, "crit": levelCrit, "critical": levelCrit,
		"err": levelErr, "error": levelErr, "3": levelErr, "warning": levelWarning, "warn": levelWarning,
		"notice": levelNotice, "info": levelInfo, "6": levelInfo, "debug": levelDebug, "DEBUG": levelDebug, "7": levelDebug,
	} {
		got, err := parseLogLevel(in)
		if err != nil || got != want {
			t.Errorf("parseLogLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "8", "-1", "verbose", "info,debug", "99999999999999999999"} {
		if l, err := parseLogLevel(bad); err == nil {
			t.Errorf("parseLogLevel(%q) = %v, want an error", bad, l)
		}
	}
}

// FuzzParseLogLevel: any value from the kernel command line gives a level
// in 0-7 or an error, never a panic.
func FuzzParseLogLevel(f *testing.F) {
	for _, s := range []string{"debug", "7", "warning", "", " info ", "-0", "+3", "8", "err\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseLogLevel(s)
		if err == nil && (l < levelEmerg || l > levelDebug) {
			t.Fatalf("parseLogLevel(%q) = %d, out of range", s, l)
		}
		if err == nil && l.String() == "" {
			t.Fatalf("level %d has no name", l)
		}
	})
}

// TestConsoleLogFiltersByLevel feeds the console filter lines the manager
// really logs, at the levels its code gives them, and lines of sources
// without levels, and checks which reach the console at each setting.
func TestConsoleLogFiltersByLevel(t *testing.T) {
	managerLines := map[string]units.Level{
		"hello.service: Main process exited, code=exited, status=0":             units.LevelDebug,
		"hello.service: Main process exited, code=killed, signal=KILL":          units.LevelNotice,
		"hello.service: Failed with result 'exit-code'.":                        units.LevelWarning,
		"hello.service: State 'stop-sigterm' timed out. Killing.":               units.LevelWarning,
		"hello.service: Scheduled restart in 100ms (restart counter is at 1).":  units.LevelInfo,
		"hello.service: Failed to execute /bin/nope: no such file or directory": units.LevelErr,
		// Words do not decide: "failed" in an info line stays info.
		"hello.service: Cleaning /var/lib/failed-jobs.": units.LevelInfo,
	}
	// Lines of sources without levels keep the guess.
	unlevelledLines := map[string]logLevel{
		"observer: hold 3 (fanotify open): g/o did not answer in time; taking allow": levelWarning,
		"observer: recovered from panic in actor x: boom":                            levelCrit,
		"dbus: serving org.freedesktop.systemd1 on /run/dbus as :1.2":                levelDebug,
		"audit: loaded /etc/vigil/audit.toml: 3 rules, enforce mode":                 levelInfo,
	}
	for line, want := range unlevelledLines {
		if got := guessLineLevel(line); got != want {
			t.Errorf("guessed level of %q = %v, want %v", line, got, want)
		}
	}
	for _, tc := range []struct {
		cmdline string
		max     logLevel
	}{
		{"", levelInfo},
		{"quiet", levelWarning},
		{"quiet vigil.log-level=debug", levelDebug},
		{"systemd.log_level=err", levelErr},
		{"vigil.log-level=5", levelNotice},
		{"vigil.log-level=loud", levelInfo}, // bad value: the default stays
	} {
		var out bytes.Buffer
		log := newConsoleLog(&out, cmdline.Parse(tc.cmdline))
		out.Reset() // the warning about a bad value
		log.debugf("a debug line")
		for line, level := range managerLines {
			log.managerLog(level, line)
		}
		for line := range unlevelledLines {
			log.managerLogf("%s", line)
		}
		want := map[string]logLevel{}
		for line, level := range managerLines {
			want[line] = logLevel(level)
		}
		for line, level := range unlevelledLines {
			want[line] = level
		}
		for line, level := range want {
			if shown := strings.Contains(out.String(), "vigil: "+line+"\n"); shown != (level <= tc.max) {
				t.Errorf("%q: line %q (%v) shown=%v", tc.cmdline, line, level, shown)
			}
		}
		if shown := strings.Contains(out.String(), "vigil: debug: a debug line\n"); shown != (tc.max == levelDebug) {
			t.Errorf("%q: debug line shown=%v", tc.cmdline, shown)
		}
	}
}

// TestConsoleLevelsMatchUnits: init's console levels and the manager's are
// both syslog's numbers, so one converts to the other as it is.
func TestConsoleLevelsMatchUnits(t *testing.T) {
	for l := units.LevelEmerg; l <= units.LevelDebug; l++ {
		if got := logLevel(l).String(); got != l.String() {
			t.Errorf("units level %d is %q, console level %q", int(l), l.String(), got)
		}
	}
}

func logLevelGuest() map[string]string {
	return map[string]string{
		"hello.service": "[unit]\ndescription = \"Hello\"\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
		"multi-user.target.wants/hello.service.link": "../hello.service",
	}
}

// TestLogLevelDebugInGuest: with vigil.log-level=debug, PID 1's own debug
// lines and the manager's debug-level lines reach the console.
func TestLogLevelDebugInGuest(t *testing.T) {
	res := mustBootGuest(t, guestRun{units: logLevelGuest(), script: "initctl is-active hello.service\n", append: "vigil.log-level=debug"})
	for _, want := range []string{
		"vigil: debug: kernel command line: ",
		"vigil: hello.service: Main process exited, code=exited, status=0",
	} {
		if !strings.Contains(res.Console, want) {
			t.Errorf("console lacks %q:\n%s", want, res.Console)
		}
	}
}

// TestLogLevelDefaultInGuest: without vigil.log-level the same boot shows
// neither.
func TestLogLevelDefaultInGuest(t *testing.T) {
	res := mustBootGuest(t, guestRun{units: logLevelGuest(), script: "initctl is-active hello.service\n"})
	for _, unwanted := range []string{"vigil: debug:", "Main process exited, code=exited, status=0"} {
		if strings.Contains(res.Console, unwanted) {
			t.Errorf("console has %q without vigil.log-level=debug:\n%s", unwanted, res.Console)
		}
	}
	if !strings.Contains(res.Console, "vigil: reached default target") {
		t.Errorf("no default target line")
	}
}
