package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BenchScript is the guest script of a boot measurement. It runs as soon
// as the default target is reached and reads PID 1's memory first:
// smaps_rollup's Rss and Pss are exact, /proc/1/status's VmRSS and VmHWM
// lag on the 6.1 kernel for a quiet process (platform notes), so both are
// taken. Then it ends, and its unit powers the guest off.
const BenchScript = `grep -E '^(Rss|Pss):' /proc/1/smaps_rollup
grep -E '^(VmRSS|VmHWM):' /proc/1/status
`

// BootSample is what one measured boot showed.
type BootSample struct {
	// TargetUptime is the guest's uptime when Vigil reached the default
	// target; SinceExec the part of it after the kernel exec'd /init.
	TargetUptime time.Duration
	SinceExec    time.Duration
	// RssKB and PssKB are from /proc/1/smaps_rollup, VmRSSKB and VmHWMKB
	// from /proc/1/status, read by the script right after the target.
	RssKB, PssKB     int
	VmRSSKB, VmHWMKB int
	// Poweroff is the host time from the script's end (its unit then
	// asks Vigil to power off) to QEMU's exit.
	Poweroff time.Duration
	// Wall is the host time from QEMU's start to its exit.
	Wall time.Duration
}

// MeasureBoot boots cfg with BenchScript as its script (cfg.Script is
// replaced) and returns the sample. Any harness failure or unclean
// shutdown is an error: a broken boot is not a figure.
func MeasureBoot(ctx context.Context, cfg RunConfig) (BootSample, error) {
	cfg.Script = BenchScript
	res, err := RunScript(ctx, cfg)
	if err != nil {
		return BootSample{}, err
	}
	if res.ExitStatus != 0 {
		return BootSample{}, fmt.Errorf("bench script exited with %d:\n%s", res.ExitStatus, strings.Join(res.ScriptOutput, "\n"))
	}
	mem, err := ParseMemoryLines(res.ScriptOutput)
	if err != nil {
		return BootSample{}, err
	}
	return BootSample{
		TargetUptime: res.TargetUptime,
		SinceExec:    res.SinceExec,
		RssKB:        mem["Rss"],
		PssKB:        mem["Pss"],
		VmRSSKB:      mem["VmRSS"],
		VmHWMKB:      mem["VmHWM"],
		Poweroff:     res.Elapsed - res.ScriptEnded,
		Wall:         res.Elapsed,
	}, nil
}

// benchMemoryFields are the fields BenchScript prints, all required.
var benchMemoryFields = []string{"Rss", "Pss", "VmRSS", "VmHWM"}

// ParseMemoryLines reads "Name:   1234 kB" lines (smaps_rollup, status)
// into kB by name. Lines of other shapes are skipped; each of Rss, Pss,
// VmRSS and VmHWM must be there.
func ParseMemoryLines(lines []string) (map[string]int, error) {
	mem := map[string]int{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" || !strings.HasSuffix(f[0], ":") {
			continue
		}
		kb, err := strconv.Atoi(f[1])
		if err != nil || kb < 0 {
			continue
		}
		mem[strings.TrimSuffix(f[0], ":")] = kb
	}
	for _, name := range benchMemoryFields {
		if _, ok := mem[name]; !ok {
			return nil, fmt.Errorf("bench output lacks PID 1's %s: %q", name, lines)
		}
	}
	return mem, nil
}

// WriteExtraUnits writes n units into dir, all wanted by
// multi-user.target and unordered among themselves: every other one a
// simple service that sleeps, the rest oneshots running /bin/true that
// remain active. They stand for the services of a small real system.
func WriteExtraUnits(dir string, n int) error {
	wants := filepath.Join(dir, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("extra units: %w", err)
	}
	for i := range n {
		name := fmt.Sprintf("bench-%02d.service", i)
		text := fmt.Sprintf("[unit]\ndescription = \"Benchmark service %d\"\n[service]\nexec-start = \"/bin/sleep 100000\"\n", i)
		if i%2 == 1 {
			text = fmt.Sprintf("[unit]\ndescription = \"Benchmark oneshot %d\"\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n", i)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("extra units: %w", err)
		}
		if err := os.Symlink("../"+name, filepath.Join(wants, name)); err != nil {
			return fmt.Errorf("extra units: %w", err)
		}
	}
	return nil
}

// Median returns the middle value (the mean of the two middle ones for an
// even count); zero for none.
func Median[T int | time.Duration](values []T) T {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// BootSummary is the median and range of each figure over several boots.
type BootSummary struct {
	N                                 int
	TargetUptime, SinceExec, Poweroff [3]time.Duration // median, min, max
	RssKB, PssKB, VmRSSKB, VmHWMKB    [3]int
}

// Summarize computes medians and ranges over samples.
func Summarize(samples []BootSample) BootSummary {
	pick := func(f func(BootSample) time.Duration) [3]time.Duration {
		var v []time.Duration
		for _, s := range samples {
			v = append(v, f(s))
		}
		if len(v) == 0 {
			return [3]time.Duration{}
		}
		return [3]time.Duration{Median(v), slices.Min(v), slices.Max(v)}
	}
	pickKB := func(f func(BootSample) int) [3]int {
		var v []int
		for _, s := range samples {
			v = append(v, f(s))
		}
		if len(v) == 0 {
			return [3]int{}
		}
		return [3]int{Median(v), slices.Min(v), slices.Max(v)}
	}
	return BootSummary{
		N:            len(samples),
		TargetUptime: pick(func(s BootSample) time.Duration { return s.TargetUptime }),
		SinceExec:    pick(func(s BootSample) time.Duration { return s.SinceExec }),
		Poweroff:     pick(func(s BootSample) time.Duration { return s.Poweroff }),
		RssKB:        pickKB(func(s BootSample) int { return s.RssKB }),
		PssKB:        pickKB(func(s BootSample) int { return s.PssKB }),
		VmRSSKB:      pickKB(func(s BootSample) int { return s.VmRSSKB }),
		VmHWMKB:      pickKB(func(s BootSample) int { return s.VmHWMKB }),
	}
}
