package units

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the time the manager schedules by: the wall clock, the boot
// time, and timers on the loop. The default is the machine's; tests of
// timer units give a fake one they advance by hand.
type Clock interface {
	Now() time.Time
	// BootTime is when the machine booted (on-boot's base).
	BootTime() time.Time
	// AfterFunc runs fn on the loop after d; the returned func cancels it.
	AfterFunc(d time.Duration, fn func()) (stop func())
}

// systemClock is the machine's clock with the loop's timer heap.
type systemClock struct{ m *Manager }

func (c systemClock) Now() time.Time { return time.Now() }

func (c systemClock) BootTime() time.Time {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

func (c systemClock) AfterFunc(d time.Duration, fn func()) func() {
	id := c.m.AfterFunc(d, fn)
	return func() { c.m.StopTimer(id) }
}

// now is the manager's clock's time.
func (m *Manager) now() time.Time { return m.opts.Clock.Now() }
