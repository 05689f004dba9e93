package units

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// levelledLog captures what Options.Log receives.
type levelledLog struct {
	mu    sync.Mutex
	lines []levelledLine
}

type levelledLine struct {
	level Level
	text  string
}

func (l *levelledLog) log(level Level, line string) {
	l.mu.Lock()
	l.lines = append(l.lines, levelledLine{level, line})
	l.mu.Unlock()
}

// levelOf is the level of the first captured line that starts with prefix.
func (l *levelledLog) levelOf(prefix string) (Level, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lines {
		if strings.HasPrefix(ln.text, prefix) {
			return ln.level, true
		}
	}
	return 0, false
}

func (l *levelledLog) waitLevel(t *testing.T, prefix string) Level {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if lv, ok := l.levelOf(prefix); ok {
			return lv
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("no line starting %q in %v", prefix, l.lines)
	return 0
}

// TestServiceLogLevels: the levels are systemd's for the same messages: a
// successful main exit is debug, an unsuccessful one notice, "Failed with
// result" warning; Logf, still set, gets nothing when Log is.
func TestServiceLogLevels(t *testing.T) {
	var got levelledLog
	var unlevelled []string
	var mu sync.Mutex
	h := newHarnessWith(t, map[string]string{
		"good.service": "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n",
		"bad.service":  "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"exit 3\"]\n",
	}, func(o *Options) {
		o.Log = got.log
		o.Logf = func(format string, args ...any) {
			mu.Lock()
			unlevelled = append(unlevelled, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
	})
	if res, _ := h.start("good.service"); res != "done" {
		t.Fatalf("good.service: %s", res)
	}
	if res, _ := h.start("bad.service"); res != "failed" {
		t.Fatalf("bad.service: %s", res)
	}
	for prefix, want := range map[string]Level{
		"good.service: Main process exited, code=exited, status=0": LevelDebug,
		"bad.service: Main process exited, code=exited, status=3":  LevelNotice,
		"bad.service: Failed with result 'exit-code'.":             LevelWarning,
	} {
		if lv := got.waitLevel(t, prefix); lv != want {
			t.Errorf("%q logged at %v, want %v", prefix, lv, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(unlevelled) > 0 {
		t.Errorf("Logf got lines although Log is set: %q", unlevelled)
	}
}

// TestLogfFallbackKeepsText: without Log, Logf gets the same text as
// before levels existed, so existing consumers keep matching it.
func TestLogfFallbackKeepsText(t *testing.T) {
	h := newHarness(t, map[string]string{
		"bad.service": "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"exit 3\"]\n",
	})
	if res, _ := h.start("bad.service"); res != "failed" {
		t.Fatalf("bad.service: %s", res)
	}
	for _, want := range []string{
		"bad.service: Main process exited, code=exited, status=3",
		"bad.service: Failed with result 'exit-code'.",
	} {
		if !strings.Contains(h.logText(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.logText())
		}
	}
}

func TestLevelString(t *testing.T) {
	for l, want := range map[Level]string{LevelEmerg: "emerg", LevelErr: "err", LevelWarning: "warning",
		LevelNotice: "notice", LevelInfo: "info", LevelDebug: "debug", Level(8): "8", Level(-1): "-1"} {
		if got := l.String(); got != want {
			t.Errorf("Level(%d).String() = %q, want %q", int(l), got, want)
		}
	}
}
