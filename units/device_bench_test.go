package units

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/observer/uevent"
	"vigil/units/api"
)

// BenchmarkUeventToTriggeredStart measures, on the host, the time from a
// uevent posted to the raw source (as the kernel listener posts it) to
// the start of the [trigger] unit it matches: the intake observer, the
// worker (file system probe of a real ext4 image, /dev/disk links under a
// temporary root), the device source and the trigger's start job. The
// unit is a target, so no process start is in the figure.
func BenchmarkUeventToTriggeredStart(b *testing.B) {
	dir := b.TempDir()
	devRoot := filepath.Join(dir, "root")
	makeExt4(b, filepath.Join(devRoot, "dev/vdb"), "bench")
	h := &harness{t: b, dir: dir, units: filepath.Join(dir, "units")}
	h.write(map[string]string{"on-change.target": `[unit]
start-limit-burst = 0
[trigger]
uevent = { subsystem = "block", action = "change", env = { ID_FS_LABEL = "bench" } }
`})
	h.loop = observer.New(observer.Options{Logf: func(string, ...any) {}})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if _, err := process.Start(ctx, h.loop); err != nil {
		b.Fatal(err)
	}
	m, err := New(h.loop, Options{UnitPaths: []string{h.units}, RuntimeDir: filepath.Join(dir, "run"), Logf: func(string, ...any) {},
		Devices: &DeviceOptions{SourceName: "bench-uevent", ManageNodes: true, DevRoot: devRoot}})
	if err != nil {
		b.Fatal(err)
	}
	h.m = m
	h.done = make(chan struct{})
	go func() { h.loop.Run(ctx); close(h.done) }()
	b.Cleanup(func() { m.StopDevices(); h.close() })
	raw := h.loop.NewSource("bench-uevent", 16)

	started := make(chan struct{}, 1)
	h.do(func() {
		m.WatchUnits(func(u *Unit) {
			if u.Name == "on-change.target" && u.active == StateActive {
				select {
				case started <- struct{}{}:
				default:
				}
			}
		})
	})
	msg := "change@/devices/virtual/block/vdb\x00ACTION=change\x00DEVPATH=/devices/virtual/block/vdb\x00SUBSYSTEM=block\x00DEVNAME=vdb\x00DEVTYPE=disk\x00MAJOR=254\x00MINOR=16\x00"
	var total time.Duration
	for b.Loop() {
		h.do(func() { m.Enqueue("on-change.target", api.JobStop, "") })
		begin := time.Now()
		u, err := uevent.Parse([]byte(msg))
		if err != nil {
			b.Fatal(err)
		}
		raw.Post(uevent.Event(u))
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			b.Fatal("the trigger did not start its unit")
		}
		total += time.Since(begin)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/trigger")
}
