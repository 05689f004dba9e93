package pid1

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
)

// TestTimersInGuest: a timer fires its service 2 s after boot and every
// second after, and a clock jump (date -s) is noticed at once by a timer
// that asks for it.
func TestTimersInGuest(t *testing.T) {
	units := map[string]string{
		// A run a second: more than the default start limit (5 in 10 s)
		// allows, which would fail the unit at its sixth start.
		"tick.service":                        "[unit]\nstart-limit-burst = 0\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/tick\"\n",
		"tick.timer":                          "[timer]\non-boot = \"2s\"\non-unit-active = \"1s\"\naccuracy = \"1ms\"\n[install]\nwanted-by = [\"timers.target\"]\n",
		"timers.target.wants/tick.timer.link": "../tick.timer",
		"jump.service":                        "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"date +%%Y >> /run/jumps\"]\n",
		"jump.timer":                          "[timer]\non-clock-change = true\non-calendar = \"2099-01-01\"\n",
		"timers.target.wants/jump.timer.link": "../jump.timer",
	}
	// Each run of tick.service records the uptime it runs at and, from
	// the timer, the elapse that started it (LastTriggerUSec) and the next
	// one it scheduled (NextElapseUSecRealtime), in microseconds, and the
	// activation on-unit-active counts from (the service's
	// InactiveExitTimestamp, to the second). The timer does not elapse
	// again while its unit runs, so all belong to this run. The checks are
	// on these figures, not on the wall time between two runs' commands:
	// that is the run's length when it exceeds the interval (20 s under
	// TCG at host load 30), and Vigil's start of a unit after an elapse
	// took up to 2.2 s there. A file, as the unit would expand "$" itself.
	tick := initramfs.File{Path: "/bin/tick", Mode: 0o755,
		Data: []byte("#!/bin/sh\nshow() { /sbin/initctl show \"$1\" -p \"$2\" --value; }\n" +
			"echo \"$(cut -d' ' -f1 /proc/uptime) $(show tick.timer LastTriggerUSec) $(show tick.timer NextElapseUSecRealtime) $(show tick.service InactiveExitTimestamp)\" >> /run/ticks\n")}
	// The waits are deadlines for "never", not speeds: 600 rounds each.
	script := `
for i in $(seq 1 600); do [ "$(wc -l < /run/ticks 2>/dev/null || echo 0)" -ge 6 ] && break; sleep 0.2; done
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
		activated    time.Time
	}
	var runs []run
	for _, line := range res.ScriptOutput {
		if rest, ok := strings.CutPrefix(line, "tick "); ok {
			f := strings.SplitN(rest, " ", 4)
			if len(f) != 4 {
				t.Fatalf("bad tick line %q", line)
			}
			up, err1 := strconv.ParseFloat(f[0], 64)
			elapse, err2 := strconv.ParseInt(f[1], 10, 64)
			next, err3 := strconv.ParseInt(f[2], 10, 64)
			activated, err4 := time.Parse("Mon 2006-01-02 15:04:05 MST", f[3])
			if err1 != nil || err2 != nil || err3 != nil || err4 != nil || elapse <= 0 || next <= 0 {
				t.Fatalf("bad tick line %q: %v %v %v %v", line, err1, err2, err3, err4)
			}
			runs = append(runs, run{up, elapse, next, activated})
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
	// Each run's next elapse is 1 s after its activation (to the second
	// the timestamp has), which is after its elapse; no elapse comes
	// before its schedule: so never less than 1 s after the last (10 ms
	// are left for rounding).
	const ms = 1000
	for i, r := range runs {
		due := time.UnixMicro(r.next - 1000*ms)
		if !due.Truncate(time.Second).Equal(r.activated.Truncate(time.Second)) {
			t.Errorf("run %d: next elapse at %v, want 1 s after the activation at %v (on-unit-active)", i, time.UnixMicro(r.next).UTC(), r.activated.UTC())
		}
		if r.next-r.elapse < 990*ms {
			t.Errorf("run %d: next elapse %.3f s after its own, want at least 1 s", i, float64(r.next-r.elapse)/1e6)
		}
		if i > 0 && r.elapse < runs[i-1].next-10*ms {
			t.Errorf("run %d: elapsed %.3f s before it was due", i, float64(runs[i-1].next-r.elapse)/1e6)
		}
	}
	for i, r := range runs {
		t.Logf("run %d at uptime %.2f s: elapse %d µs, next %d µs (%+.3f s), activation %s", i, r.uptime, r.elapse, r.next,
			float64(r.next-r.elapse)/1e6, r.activated.Format(time.TimeOnly))
	}
	if !strings.Contains(out, "jumps: 2031") {
		t.Errorf("the clock jump did not trigger jump.timer:\n%s", out)
	}
	if !strings.Contains(out, "tick.timer") || !strings.Contains(out, "tick.service") {
		t.Errorf("list-timers lacks tick.timer:\n%s", out)
	}
}
