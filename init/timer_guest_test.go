package pid1

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"vigil/initramfs"
)

// TestTimersInGuest: a timer fires its service 2 s after boot and every
// second after, and a clock jump (date -s) is noticed at once by a timer
// that asks for it.
func TestTimersInGuest(t *testing.T) {
	units := map[string]string{
		"tick.service":                        "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/tick\"\n",
		"tick.timer":                          "[timer]\non-boot = \"2s\"\non-unit-active = \"1s\"\naccuracy = \"1ms\"\n[install]\nwanted-by = [\"timers.target\"]\n",
		"timers.target.wants/tick.timer.link": "../tick.timer",
		"jump.service":                        "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"date +%%Y >> /run/jumps\"]\n",
		"jump.timer":                          "[timer]\non-clock-change = true\non-calendar = \"2099-01-01\"\n",
		"timers.target.wants/jump.timer.link": "../jump.timer",
	}
	// Each run of tick.service records the uptime it runs at and, from
	// the timer, the elapse that started it (LastTriggerUSec) and the next
	// one it scheduled (NextElapseUSecRealtime: on-unit-active counts from
	// this run's activation), in microseconds. The timer does not elapse
	// again while its unit runs, so both belong to this run. The checks
	// are on the timer's own figures: the wall time between two runs'
	// commands is the run's length when that exceeds the interval (20 s
	// under TCG at host load 30), and otherwise varies with exec latency
	// by more than the schedule's tolerance. A file, as the unit would
	// expand "$" itself.
	tick := initramfs.File{Path: "/bin/tick", Mode: 0o755,
		Data: []byte("#!/bin/sh\nshow() { /sbin/initctl show tick.timer -p \"$1\" --value; }\n" +
			"echo \"$(cut -d' ' -f1 /proc/uptime) $(show LastTriggerUSec) $(show NextElapseUSecRealtime)\" >> /run/ticks\n")}
	// The jump wait is a deadline for "never", not a speed: 600 rounds of
	// at least 0.1 s.
	script := `
while [ "$(wc -l < /run/ticks 2>/dev/null || echo 0)" -lt 6 ]; do sleep 0.2; done
head -n 6 /run/ticks | sed 's/^/tick /'
initctl is-active tick.timer jump.timer
test ! -e /run/jumps || { echo "jump.service ran before the jump"; exit 1; }
date -s "2031-06-01 12:00:00" >/dev/null
for i in $(seq 1 600); do test -s /run/jumps && break; sleep 0.1; done
echo "jumps: $(cat /run/jumps 2>/dev/null)"
initctl list-timers --all
`
	res := mustBootGuest(t, guestRun{units: units, script: script, files: []initramfs.File{tick}})
	out := strings.Join(res.ScriptOutput, "\n")
	if res.ExitStatus != 0 {
		t.Fatalf("script failed:\n%s", out)
	}
	type run struct {
		uptime       float64
		elapse, next int64 // µs
	}
	var runs []run
	for _, line := range res.ScriptOutput {
		if rest, ok := strings.CutPrefix(line, "tick "); ok {
			f := strings.Fields(rest)
			if len(f) != 3 {
				t.Fatalf("bad tick line %q", line)
			}
			up, err1 := strconv.ParseFloat(f[0], 64)
			elapse, err2 := strconv.ParseInt(f[1], 10, 64)
			next, err3 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || elapse <= 0 || next <= 0 {
				t.Fatalf("bad tick line %q", line)
			}
			runs = append(runs, run{up, elapse, next})
		}
	}
	if len(runs) < 6 {
		t.Fatalf("ticks %v:\n%s", runs, out)
	}
	// The first run comes 2 s after the kernel started (on-boot counts
	// from boot, not from Vigil's start).
	if runs[0].uptime < 2 {
		t.Errorf("first tick at uptime %.2f s, before on-boot = 2s", runs[0].uptime)
	}
	// Each run schedules the next elapse 1 s after its activation, which
	// follows its elapse closely (Vigil starts the unit on the elapse; no
	// exec comes between); no elapse comes before its schedule, so never
	// less than 1 s after the last (10 ms are left for rounding).
	const ms = 1000
	var ahead []float64
	for i, r := range runs {
		ahead = append(ahead, float64(r.next-r.elapse)/1e6)
		if r.next-r.elapse < 990*ms {
			t.Errorf("run %d: next elapse %.3f s after its own, want 1 s (on-unit-active)", i, float64(r.next-r.elapse)/1e6)
		}
		if i > 0 && r.elapse < runs[i-1].next-10*ms {
			t.Errorf("run %d: elapsed %.3f s before it was due", i, float64(runs[i-1].next-r.elapse)/1e6)
		}
	}
	sorted := slices.Clone(ahead)
	slices.Sort(sorted)
	if median := sorted[len(sorted)/2]; median > 1.5 {
		t.Errorf("next elapses scheduled %v s after the elapse (median %.3f s), want 1 s after the activation", ahead, median)
	}
	t.Logf("runs (uptime, elapse µs, next µs): %v; next scheduled %v s after each elapse", runs, ahead)
	if !strings.Contains(out, "jumps: 2031") {
		t.Errorf("the clock jump did not trigger jump.timer:\n%s", out)
	}
	if !strings.Contains(out, "tick.timer") || !strings.Contains(out, "tick.service") {
		t.Errorf("list-timers lacks tick.timer:\n%s", out)
	}
}
