package calendar

import (
	"math/rand"
	"runtime"
	"testing"
	"time"
)

// timerSpecs parses n expressions of the kind timer units use (the
// generator's mix, without time zones, which load their rules per Spec).
func timerSpecs(b *testing.B, n int) []*Spec {
	g := exprGenerator{rand.New(rand.NewSource(1))}
	specs := make([]*Spec, 0, n)
	for len(specs) < n {
		s, err := parse(g.expr(), time.UTC)
		if err != nil || s.loc != nil {
			continue
		}
		if _, ok := s.Next(time.Unix(1700000000, 0)); !ok {
			continue
		}
		specs = append(specs, s)
	}
	return specs
}

// BenchmarkNext10000Timers computes the next elapse of each of 10,000
// timers in turn, in UTC and in a zone with daylight saving time: the cost
// of rescheduling all of them after a clock change.
func BenchmarkNext10000Timers(b *testing.B) {
	specs := timerSpecs(b, 10000)
	for _, zone := range []string{"UTC", "Europe/Berlin"} {
		loc := mustZone(b, zone)
		b.Run(zone, func(b *testing.B) {
			at := time.Unix(1700000000, 0).In(loc)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				specs[i%len(specs)].Next(at)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "nexts/s")
		})
	}
}

func BenchmarkParse(b *testing.B) {
	exprs := []string{"Mon..Fri *-*-* 04:00", "*:0/15", "daily", "*-*~01 12:00:00", "Sat,Sun 08..18/2:30:00"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := parse(exprs[i%len(exprs)], time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerSpec reports the heap a parsed Spec keeps.
func BenchmarkMemoryPerSpec(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		specs := timerSpecs(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/spec")
		runtime.KeepAlive(specs)
	}
}
