package units

import (
	"slices"
	"sort"
	"testing"
	"time"

	"vigil/units/api"
)

// A start queues no job for dependencies that are already active, nor stop
// jobs for conflicting units that are already inactive: only the asked
// unit's job appears (JobNew/JobRemoved, list-jobs). A dependency that is
// not active still gets its job.
func TestStartQueuesNoRedundantJobs(t *testing.T) {
	oneshot := "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n"
	h := newHarness(t, map[string]string{
		"base.service": oneshot,
		"top.service":  "[unit]\nrequires = [\"base.service\"]\nafter = [\"base.service\"]\n" + oneshot,
	})
	var queued []string
	var stop func()
	h.do(func() {
		stop = h.m.WatchJobs(func(j *Job) {
			if j.State == jobWaiting {
				queued = append(queued, j.Unit.Name+"/"+j.Type)
			}
		})
	})
	t.Cleanup(func() { h.do(stop) })
	seen := func() []string {
		var out []string
		h.do(func() { out = append(out, queued...); queued = nil })
		sort.Strings(out)
		return out
	}
	if r, why := h.start("base.service"); r != api.ResultDone {
		t.Fatalf("start base.service: %s %s", r, why)
	}
	first := seen()
	if !slices.Contains(first, "base.service/start") {
		t.Fatalf("jobs of the first start: %v, want base.service/start among them", first)
	}
	// Everything base.service needed (sysinit.target, the slices...) is
	// active now, and shutdown.target is inactive: top.service's start
	// needs no other job.
	if r, why := h.start("top.service"); r != api.ResultDone {
		t.Fatalf("start top.service: %s %s", r, why)
	}
	if got := seen(); !slices.Equal(got, []string{"top.service/start"}) {
		t.Errorf("jobs of a start whose dependencies are active: %v, want only top.service/start", got)
	}
	// A requirement that is not active keeps its job.
	h.do(func() { h.m.Enqueue("base.service", api.JobStop, api.ModeReplace) })
	h.waitState("base.service", "inactive", 10*time.Second)
	if r, why := h.job("top.service", api.JobRestart, ""); r != api.ResultDone {
		t.Fatalf("restart top.service: %s %s", r, why)
	}
	if got := seen(); !slices.Contains(got, "base.service/start") {
		t.Errorf("jobs of a restart whose requirement is inactive: %v, want base.service/start among them", got)
	}
	if a, _ := h.state("base.service"); a != "active" {
		t.Errorf("base.service is %s after top.service's restart, want active", a)
	}
}
