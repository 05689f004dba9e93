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
//
// Wall times inside the guest follow the host's load (QEMU/TCG shares the
// host's CPUs with everything else); PID 1's own CPU time per command, the
// sum of its threads' run time in /proc/1/task/*/schedstat around the runs
// (or utime+stime in 10 ms ticks without schedstats), is the server's cost
// and varies less. (busybox awk's %d stops at 2^31: hence %.0f.) The first run of each command warms
// up and is left out of that sum.
const dbusBenchScript = `
export LC_ALL=C SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb
pid1cpu() {
	if [ -r /proc/1/schedstat ]; then
		cat /proc/1/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }'
	else
		awk '{ printf "%.0f", ($14 + $15) * 10000000 }' /proc/1/stat
	fi
}
timed() {
	label=$1; n=$2; shift 2
	"$@" > /dev/null 2>&1
	before=$(pid1cpu)
	dbusclient time "$label" "$n" "$@"
	after=$(pid1cpu)
	echo "pid1cpu $label $(( (after - before) / n ))"
}
echo "units_loaded=$(systemctl list-units --all --no-legend | wc -l)"
timed version 5 systemctl --version
timed list-units 7 systemctl list-units
timed list-units-all 7 systemctl list-units --all
timed start-oneshot 7 systemctl start noop.service
timed daemon-reload 5 systemctl daemon-reload
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
	pid1CPU     map[string]float64   // label -> PID 1's CPU time per run in ms
	rssKB       int
	pssKB       int
}

func parseDBusBench(lines []string) (dbusGuestFigures, error) {
	f := dbusGuestFigures{times: map[string][]float64{}, pid1CPU: map[string]float64{}}
	for _, l := range lines {
		fields := strings.Fields(l)
		switch {
		case len(fields) == 3 && fields[0] == "pid1cpu":
			ns, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				return f, fmt.Errorf("bad pid1cpu line %q", l)
			}
			f.pid1CPU[fields[1]] = float64(ns) / 1e6
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
		Image:   dbusGuestSpec(tb, dbusBenchUnits(n), false),
		Script:  dbusBenchScript,
		Boot:    qemu.Config{MemoryMB: 1024},
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
				b.ReportMetric(f.pid1CPU[label], "pid1-cpu-ms-"+label)
			}
			b.ReportMetric(float64(f.unitsLoaded), "units-loaded")
			b.ReportMetric(float64(f.rssKB), "kB-pid1-Rss")
			b.ReportMetric(float64(f.pssKB), "kB-pid1-Pss")
			if n == 10 {
				rss10 = f.rssKB
			} else if rss10 > 0 {
				b.ReportMetric(float64(f.rssKB-rss10)/float64(n-10), "kB-Rss-per-unit")
			}
			b.Logf("units=%d loaded=%d times(ms)=%v pid1-cpu(ms per run)=%v rss=%d kB pss=%d kB", n, f.unitsLoaded, f.times, f.pid1CPU, f.rssKB, f.pssKB)
		})
	}
}
