package units

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
)

// jobResults records every finished job's result by unit, from the loop.
func watchJobResults(h *harness) func() map[string]string {
	results := map[string]string{}
	h.do(func() {
		h.m.WatchJobs(func(j *Job) {
			if j.State == "done" {
				results[j.Unit.Name] = j.Result
			}
		})
	})
	return func() map[string]string {
		out := map[string]string{}
		h.do(func() {
			for k, v := range results {
				out[k] = v
			}
		})
		return out
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cancelUnits() map[string]string {
	return map[string]string{
		"slow.service": "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/sleep 30\"\n",
		"top.service":  "[unit]\nrequires = [\"slow.service\"]\nafter = [\"slow.service\"]\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = \"/bin/true\"\n",
	}
}

func jobOf(h *harness, unit string) uint64 {
	var id uint64
	h.do(func() {
		if u := h.m.Unit(unit); u != nil && u.job != nil {
			id = u.job.ID
		}
	})
	return id
}

func TestCancelWaitingJob(t *testing.T) {
	h := newHarness(t, cancelUnits())
	results := watchJobResults(h)
	h.do(func() {
		if _, err := h.m.Enqueue("top.service", api.JobStart, api.ModeReplace); err != nil {
			t.Fatal(err)
		}
	})
	top, slow := jobOf(h, "top.service"), jobOf(h, "slow.service")
	if top == 0 || slow == 0 {
		t.Fatalf("jobs: top %d slow %d", top, slow)
	}
	var err error
	h.do(func() { err = h.m.CancelJob(top) })
	if err != nil {
		t.Fatal(err)
	}
	if r := results()["top.service"]; r != api.ResultCanceled {
		t.Fatalf("top's job ended %q, want canceled", r)
	}
	// The other job goes on: slow is still starting.
	if a, _ := h.state("slow.service"); a != "activating" {
		t.Errorf("slow.service is %s, want activating", a)
	}
	if jobOf(h, "slow.service") != slow {
		t.Errorf("slow's job is gone after canceling top's")
	}
	if a, _ := h.state("top.service"); a != "inactive" {
		t.Errorf("top.service is %s after its job was canceled", a)
	}
	h.do(func() { err = h.m.CancelJob(top) })
	var nsj *NoSuchJobError
	if !errors.As(err, &nsj) {
		t.Errorf("canceling a finished job: %v, want NoSuchJobError", err)
	}
}

func TestCancelRunningJobFailsDependents(t *testing.T) {
	h := newHarness(t, cancelUnits())
	results := watchJobResults(h)
	h.do(func() { h.m.Enqueue("top.service", api.JobStart, api.ModeReplace) })
	slow := jobOf(h, "slow.service")
	waitFor(t, "slow's job to run", func() bool {
		var st string
		h.do(func() {
			if j := h.m.jobs[slow]; j != nil {
				st = j.State
			}
		})
		return st == jobRunning
	})
	var err error
	h.do(func() { err = h.m.CancelJob(slow) })
	if err != nil {
		t.Fatal(err)
	}
	got := results()
	if got["slow.service"] != api.ResultCanceled || got["top.service"] != api.ResultDependency {
		t.Fatalf("results %v, want slow canceled and top dependency", got)
	}
	// Like systemd, the unit keeps its state: the process still runs.
	if a, s := h.state("slow.service"); a != "activating" {
		t.Errorf("slow.service is %s/%s after its running job was canceled, want activating", a, s)
	}
}

func TestClearJobsAndControlCancel(t *testing.T) {
	h := newHarness(t, cancelUnits())
	h.do(func() { h.m.Enqueue("top.service", api.JobStart, api.ModeReplace) })
	req := &testRequest{}
	h.do(func() { h.m.HandleRequest(api.MethodCancel, req.with(api.CancelArgs{})) })
	if req.failed != "" {
		t.Fatalf("cancel: %s", req.failed)
	}
	res, _ := req.reply.(api.CancelResult)
	// top's job is canceled and slow's (failing top's with "dependency",
	// already done) or the other way round: at least one of two.
	if res.Canceled < 1 || res.Canceled > 2 {
		t.Errorf("cancel canceled %d jobs", res.Canceled)
	}
	var n int
	h.do(func() { n = len(h.m.Jobs()) })
	if n != 0 {
		t.Errorf("%d jobs left after cancel of all", n)
	}
	req = &testRequest{}
	h.do(func() { h.m.HandleRequest(api.MethodCancel, req.with(api.CancelArgs{IDs: []uint64{9999}})) })
	if !strings.Contains(req.failed, "9999") {
		t.Errorf("cancel of an unknown job: %q", req.failed)
	}
}

// testRequest is a control request answered in place.
type testRequest struct {
	args   any
	reply  any
	failed string
}

func (r *testRequest) with(args any) *testRequest { r.args = args; return r }

func (r *testRequest) Decode(v any) error {
	switch dst := v.(type) {
	case *api.CancelArgs:
		*dst = r.args.(api.CancelArgs)
		return nil
	}
	return os.ErrInvalid
}
func (r *testRequest) Reply(v any) { r.reply = v }
func (r *testRequest) Fail(code int, format string, args ...any) {
	r.failed = strings.TrimSpace(fmt.Sprintf(format, args...))
}
func (r *testRequest) Progress(any) bool     { return true }
func (r *testRequest) Done() <-chan struct{} { return nil }
