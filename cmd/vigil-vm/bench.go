package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"vigil/qemu"
)

// benchConfig is one column of the boot benchmark.
type benchConfig struct {
	extraUnits int
	smp        int
	unitDir    string
	samples    []qemu.BootSample
}

func (c *benchConfig) label() string {
	units := "default image"
	if c.extraUnits > 0 {
		units = fmt.Sprintf("+%d units", c.extraUnits)
	}
	return fmt.Sprintf("%s, -smp %d", units, c.smp)
}

// parseIntList parses "0,50".
func parseIntList(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, usageError{fmt.Errorf("--%s %q: want comma-separated counts", flagName, s)}
		}
		out = append(out, n)
	}
	return out, nil
}

// cmdBench boots every configuration once per round, in a new random
// order each round (runs drift over minutes, so configurations are
// interleaved rather than run one after the other), and prints a
// Markdown table of medians and ranges.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	var b buildFlags
	b.register(fs)
	rounds := fs.Int("rounds", 5, "boots per configuration")
	smpList := fs.String("smp", "1,2", "virtual CPU counts to measure")
	unitsList := fs.String("extra-units", "0,50", "numbers of extra units wanted by multi-user.target")
	timeout := fs.Duration("timeout", 3*time.Minute, "limit for each boot")
	appendArgs := fs.String("append", "", "extra kernel command line arguments for every boot")
	if err := parse(fs, args); err != nil {
		return err
	}
	smps, err := parseIntList("smp", *smpList)
	if err != nil {
		return err
	}
	extras, err := parseIntList("extra-units", *unitsList)
	if err != nil {
		return err
	}
	if *rounds < 1 {
		return usageError{fmt.Errorf("--rounds %d: want at least 1", *rounds)}
	}
	spec, c, err := b.spec()
	if err != nil {
		return err
	}
	kernel, err := b.kernelPath()
	if err != nil {
		return err
	}
	// Build the programs once, not once per boot.
	if spec, err = qemu.PrepareSpec(ctx, spec, "", kernel); err != nil {
		return err
	}
	var configs []*benchConfig
	for _, n := range extras {
		dir, err := os.MkdirTemp("", "vigil-vm-bench-units-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := qemu.WriteExtraUnits(dir, n); err != nil {
			return err
		}
		for _, smp := range smps {
			configs = append(configs, &benchConfig{extraUnits: n, smp: smp, unitDir: dir})
		}
	}
	for round := 1; round <= *rounds; round++ {
		order := rand.Perm(len(configs))
		for _, i := range order {
			cfg := configs[i]
			run := qemu.RunConfig{Image: spec, Compression: c, Timeout: *timeout}
			run.Image.UnitDirs = append(append([]string(nil), spec.UnitDirs...), cfg.unitDir)
			run.Boot = qemu.Config{Kernel: kernel, SMP: cfg.smp, Append: *appendArgs}
			s, err := qemu.MeasureBoot(ctx, run)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, cfg.label(), err)
			}
			cfg.samples = append(cfg.samples, s)
			fmt.Fprintf(stderr, "vigil-vm: round %d/%d, %s: target at %.3fs (+%.3fs after exec), Rss %d kB, poweroff %.3fs\n",
				round, *rounds, cfg.label(), s.TargetUptime.Seconds(), s.SinceExec.Seconds(), s.RssKB, s.Poweroff.Seconds())
		}
	}
	writeBenchTable(stdout, configs)
	return nil
}

// writeBenchTable prints one row per figure and one column per
// configuration: "median (min–max)".
func writeBenchTable(w io.Writer, configs []*benchConfig) {
	sums := make([]qemu.BootSummary, len(configs))
	header := "| figure |"
	rule := "|---|"
	for i, c := range configs {
		sums[i] = qemu.Summarize(c.samples)
		header += " " + c.label() + " |"
		rule += "---|"
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, rule)
	seconds := func(name string, get func(qemu.BootSummary) [3]time.Duration) {
		row := "| " + name + " |"
		for _, s := range sums {
			v := get(s)
			row += fmt.Sprintf(" **%.2f** (%.2f–%.2f) |", v[0].Seconds(), v[1].Seconds(), v[2].Seconds())
		}
		fmt.Fprintln(w, row)
	}
	kB := func(name string, get func(qemu.BootSummary) [3]int) {
		row := "| " + name + " |"
		for _, s := range sums {
			v := get(s)
			row += fmt.Sprintf(" %d (%d–%d) |", v[0], v[1], v[2])
		}
		fmt.Fprintln(w, row)
	}
	seconds("guest uptime at the default target, s", func(s qemu.BootSummary) [3]time.Duration { return s.TargetUptime })
	seconds("/init exec → default target, s", func(s qemu.BootSummary) [3]time.Duration { return s.SinceExec })
	kB("PID 1 Rss, kB (smaps_rollup)", func(s qemu.BootSummary) [3]int { return s.RssKB })
	kB("PID 1 Pss, kB (smaps_rollup)", func(s qemu.BootSummary) [3]int { return s.PssKB })
	kB("PID 1 VmRSS, kB (status)", func(s qemu.BootSummary) [3]int { return s.VmRSSKB })
	kB("PID 1 VmHWM, kB (status)", func(s qemu.BootSummary) [3]int { return s.VmHWMKB })
	seconds("host wall, poweroff request → QEMU exit, s", func(s qemu.BootSummary) [3]time.Duration { return s.Poweroff })
	row := "| boots |"
	for _, s := range sums {
		row += fmt.Sprintf(" %d |", s.N)
	}
	fmt.Fprintln(w, row)
}
