package pid1

import (
	"strconv"
	"strings"
	"testing"
)

// TestTimersInGuest: a timer fires its service 2 s after boot and every
// second after, and a clock jump (date -s) is noticed at once by a timer
// that asks for it.
func TestTimersInGuest(t *testing.T) {
	units := map[string]string{
		"tick.service":                        "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"cut -d' ' -f1 /proc/uptime >> /run/ticks\"]\n",
		"tick.timer":                          "[timer]\non-boot = \"2s\"\non-unit-active = \"1s\"\naccuracy = \"1ms\"\n[install]\nwanted-by = [\"timers.target\"]\n",
		"timers.target.wants/tick.timer.link": "../tick.timer",
		"jump.service":                        "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"date +%%Y >> /run/jumps\"]\n",
		"jump.timer":                          "[timer]\non-clock-change = true\non-calendar = \"2099-01-01\"\n",
		"timers.target.wants/jump.timer.link": "../jump.timer",
	}
	script := `
while [ "$(wc -l < /run/ticks 2>/dev/null || echo 0)" -lt 4 ]; do sleep 0.2; done
echo "ticks: $(tr '\n' ' ' < /run/ticks)"
initctl is-active tick.timer jump.timer
test ! -e /run/jumps || { echo "jump.service ran before the jump"; exit 1; }
date -s "2031-06-01 12:00:00" >/dev/null
for i in $(seq 1 50); do test -s /run/jumps && break; sleep 0.1; done
echo "jumps: $(cat /run/jumps 2>/dev/null)"
initctl list-timers --all
`
	res := mustBootGuest(t, guestRun{units: units, script: script})
	out := strings.Join(res.ScriptOutput, "\n")
	if res.ExitStatus != 0 {
		t.Fatalf("script failed:\n%s", out)
	}
	var ticks []float64
	for _, line := range res.ScriptOutput {
		if rest, ok := strings.CutPrefix(line, "ticks: "); ok {
			for _, f := range strings.Fields(rest) {
				v, _ := strconv.ParseFloat(f, 64)
				ticks = append(ticks, v)
			}
		}
	}
	if len(ticks) < 4 {
		t.Fatalf("ticks %v:\n%s", ticks, out)
	}
	// The first run comes 2 s after the kernel started (on-boot counts
	// from boot, not from Vigil's start), the next ones about a second
	// apart (one second after the previous run began, plus the run).
	if ticks[0] < 2 {
		t.Errorf("first tick at uptime %.2f s, before on-boot = 2s", ticks[0])
	}
	for i := 1; i < len(ticks); i++ {
		if gap := ticks[i] - ticks[i-1]; gap < 0.95 || gap > 3 {
			t.Errorf("ticks %v: gap %.2f s, want about 1 s", ticks, gap)
		}
	}
	if !strings.Contains(out, "jumps: 2031") {
		t.Errorf("the clock jump did not trigger jump.timer:\n%s", out)
	}
	if !strings.Contains(out, "tick.timer") || !strings.Contains(out, "tick.service") {
		t.Errorf("list-timers lacks tick.timer:\n%s", out)
	}
}
