package pid1

import (
	"context"
	"fmt"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// BenchmarkBootInGuest boots Vigil as PID 1 b.N times per configuration
// (the default image, and with 50 extra units wanted by
// multi-user.target; -smp 1 and 2) and reports medians: guest uptime at
// the default target, the time from /init's exec to it, PID 1's Rss and
// Pss at that moment (smaps_rollup), and the host time from the poweroff
// request to QEMU's exit. ns/op is the host time of a whole boot and
// means little. Run it with a fixed count, on an otherwise idle machine:
//
//	go test -run X -bench BootInGuest -benchtime 5x ./init/
//
// `vigil-vm bench` measures the same, interleaving the configurations
// (runs drift over minutes), and prints a table for docs/benchmarks.md.
func BenchmarkBootInGuest(b *testing.B) {
	skipWithoutVM(b)
	kernel, err := qemu.FindKernel("/boot")
	if err != nil {
		b.Fatal(err)
	}
	// Build vigil and initctl once, not per boot.
	spec, err := qemu.PrepareSpec(context.Background(), initramfs.Spec{}, "", kernel)
	if err != nil {
		b.Fatal(err)
	}
	for _, extra := range []int{0, 50} {
		units := b.TempDir()
		if err := qemu.WriteExtraUnits(units, extra); err != nil {
			b.Fatal(err)
		}
		for _, smp := range []int{1, 2} {
			b.Run(fmt.Sprintf("units=%d/smp=%d", extra, smp), func(b *testing.B) {
				var samples []qemu.BootSample
				for b.Loop() {
					cfg := qemu.RunConfig{Image: spec, Boot: qemu.Config{Kernel: kernel, SMP: smp}, Timeout: 3 * time.Minute}
					cfg.Image.UnitDirs = []string{units}
					s, err := qemu.MeasureBoot(context.Background(), cfg)
					if err != nil {
						b.Fatal(err)
					}
					samples = append(samples, s)
				}
				sum := qemu.Summarize(samples)
				b.ReportMetric(sum.TargetUptime[0].Seconds(), "s-uptime-at-target")
				b.ReportMetric(sum.SinceExec[0].Seconds(), "s-exec-to-target")
				b.ReportMetric(float64(sum.RssKB[0]), "kB-pid1-Rss")
				b.ReportMetric(float64(sum.PssKB[0]), "kB-pid1-Pss")
				b.ReportMetric(sum.Poweroff[0].Seconds(), "s-poweroff-to-exit")
			})
		}
	}
}
