package pid1

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/qemu"
)

// dbusBenchScript times systemd 252's systemctl against Vigil over
// /run/systemd/private with the static helper (busybox has no
// sub-millisecond clock) and reads PID 1's resident memory from
// smaps_rollup after every unit object was asked for (busctl tree walks
// them all).
const dbusBenchScript = `
export LC_ALL=C SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb
echo "units_loaded=$(systemctl list-units --all --no-legend | wc -l)"
dbusclient time version 5 systemctl --version
dbusclient time list-units 7 systemctl list-units
dbusclient time list-units-all 7 systemctl list-units --all
dbusclient time start-oneshot 7 systemctl start noop.service
dbusclient time daemon-reload 5 systemctl daemon-reload
busctl --address=unix:path=/run/systemd/private tree org.freedesktop.systemd1 > /dev/null 2>&1 || echo "busctl tree failed"
systemctl list-units --all > /dev/null
echo "pid1_rss_kb=$(awk '$1 == "Rss:" { print $2 }' /proc/1/smaps_rollup)"
echo "pid1_pss_kb=$(awk '$1 == "Pss:" { print $2 }' /proc/1/smaps_rollup)"
`

// dbusBenchUnits are n targets wanted by multi-user.target (so all are
// loaded and active, as list-units shows them, without n processes) and a
// trivial oneshot.
func dbusBenchUnits(n int) map[string]string {
	units := map[string]string{
		"noop.service": "[unit]\ndescription = \"Trivial oneshot\"\nstart-limit-interval = 0\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n",
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%04d.target", i)
		units[names[i]] = fmt.Sprintf("[unit]\ndescription = \"Benchmark target %d\"\n", i)
	}
	units["bench.target"] = "[unit]\ndescription = \"Benchmark units\"\nwants = [\"" + strings.Join(names, "\", \"") + "\"]\n"
	units["multi-user.target.wants/bench.target.link"] = "../bench.target"
	return units
}

// dbusGuestFigures are one boot's measurements.
type dbusGuestFigures struct {
	unitsLoaded int
	times       map[string][]float64 // label -> wall times in ms
	rssKB       int
	pssKB       int
}

func parseDBusBench(lines []string) (dbusGuestFigures, error) {
	f := dbusGuestFigures{times: map[string][]float64{}}
	for _, l := range lines {
		fields := strings.Fields(l)
		switch {
		case len(fields) == 3 && fields[0] == "time":
			for _, v := range strings.Split(fields[2], ",") {
				ms, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return f, fmt.Errorf("bad time line %q", l)
				}
				f.times[fields[1]] = append(f.times[fields[1]], ms)
			}
		case strings.HasPrefix(l, "units_loaded="):
			f.unitsLoaded = atoi(strings.TrimPrefix(l, "units_loaded="))
		case strings.HasPrefix(l, "pid1_rss_kb="):
			f.rssKB = atoi(strings.TrimPrefix(l, "pid1_rss_kb="))
		case strings.HasPrefix(l, "pid1_pss_kb="):
			f.pssKB = atoi(strings.TrimPrefix(l, "pid1_pss_kb="))
		}
	}
	for _, label := range []string{"version", "list-units", "list-units-all", "start-oneshot", "daemon-reload"} {
		if len(f.times[label]) == 0 {
			return f, fmt.Errorf("no %s timing in the output:\n%s", label, strings.Join(lines, "\n"))
		}
	}
	if f.rssKB == 0 {
		return f, fmt.Errorf("no PID 1 Rss in the output:\n%s", strings.Join(lines, "\n"))
	}
	return f, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// measureDBusInGuest boots Vigil with n benchmark targets and runs
// dbusBenchScript.
func measureDBusInGuest(tb testing.TB, n int) dbusGuestFigures {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image:  dbusGuestSpec(tb, dbusBenchUnits(n), false),
		Script: dbusBenchScript,
		// no_timer_check: under TCG on a loaded host the kernel's check
		// of the IO-APIC timer can fail and panic the boot.
		Boot:    qemu.Config{MemoryMB: 1024, Append: "no_timer_check"},
		Timeout: 7 * time.Minute,
	})
	if err != nil {
		console := ""
		if res != nil {
			console = res.Tail
		}
		tb.Fatalf("guest run with %d units: %v\n%s", n, err, console)
	}
	if res.ExitStatus != 0 {
		tb.Fatalf("bench script failed (%d):\n%s", res.ExitStatus, strings.Join(res.ScriptOutput, "\n"))
	}
	f, err := parseDBusBench(res.ScriptOutput)
	if err != nil {
		tb.Fatal(err)
	}
	if f.unitsLoaded < n {
		tb.Fatalf("only %d units loaded, want at least %d", f.unitsLoaded, n)
	}
	return f
}

// BenchmarkDBusInGuest measures systemd 252's systemctl against Vigil in
// QEMU/TCG with 10 and with 1,000 extra units loaded: wall time of
// `systemctl --version` (the client's own start-up floor), `list-units`,
// `list-units --all`, `start` of a trivial oneshot and `daemon-reload`
// (medians of 5-7 runs inside one boot), and PID 1's Rss; the units=1000
// case also reports the Rss per unit over the units=10 boot. ns/op is a
// whole boot and means little. Run:
//
//	VIGIL_REQUIRE_VM=1 go test -run X -bench DBusInGuest -benchtime 1x ./init/
func BenchmarkDBusInGuest(b *testing.B) {
	skipWithoutVM(b)
	var rss10 int
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("units=%d", n), func(b *testing.B) {
			var f dbusGuestFigures
			for b.Loop() {
				f = measureDBusInGuest(b, n)
			}
			for _, label := range []string{"version", "list-units", "list-units-all", "start-oneshot", "daemon-reload"} {
				b.ReportMetric(median(f.times[label]), "ms-"+label)
			}
			b.ReportMetric(float64(f.unitsLoaded), "units-loaded")
			b.ReportMetric(float64(f.rssKB), "kB-pid1-Rss")
			b.ReportMetric(float64(f.pssKB), "kB-pid1-Pss")
			if n == 10 {
				rss10 = f.rssKB
			} else if rss10 > 0 {
				b.ReportMetric(float64(f.rssKB-rss10)/float64(n-10), "kB-Rss-per-unit")
			}
			b.Logf("units=%d loaded=%d times(ms)=%v rss=%d kB pss=%d kB", n, f.unitsLoaded, f.times, f.rssKB, f.pssKB)
		})
	}
}
