package units

import (
	"errors"
	"testing"

	"vigil/units/api"
)

// TestJobOrderFollowsDispatch: JobOrder (GetJobAfter/GetJobBefore) names
// the jobs a job waits for and those waiting for it, by the rule the
// dispatcher follows (start jobs along After=); a job without edges has
// neither, a finished or unknown one is NoSuchJobError.
func TestJobOrderFollowsDispatch(t *testing.T) {
	h := newHarness(t, map[string]string{
		"slow.service":  "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/sleep 1000\"\n",
		"later.service": "[unit]\nafter = [\"slow.service\"]\n[service]\nexec-start = \"/bin/sleep 1000\"\n",
		"free.service":  "[service]\ntype = \"oneshot\"\nexec-start = \"/bin/sleep 1000\"\n",
	})
	var slow, later, free *Job
	var err error
	h.do(func() {
		if slow, err = h.m.Enqueue("slow.service", api.JobStart, "replace"); err != nil {
			return
		}
		if later, err = h.m.Enqueue("later.service", api.JobStart, "replace"); err != nil {
			return
		}
		free, err = h.m.Enqueue("free.service", api.JobStart, "replace")
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(l []api.JobInfo) []uint64 {
		var out []uint64
		for _, j := range l {
			out = append(out, j.ID)
		}
		return out
	}
	check := func(what string, j *Job, wantBefore, wantAfter []uint64) {
		t.Helper()
		var before, after []api.JobInfo
		var err error
		h.do(func() { before, after, err = h.m.JobOrder(j.ID) })
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if b, a := ids(before), ids(after); !equalIDs(b, wantBefore) || !equalIDs(a, wantAfter) {
			t.Errorf("%s: before %v after %v, want before %v after %v", what, b, a, wantBefore, wantAfter)
		}
	}
	check("slow start", slow, nil, []uint64{later.ID})
	check("later start", later, []uint64{slow.ID}, nil)
	check("free start", free, nil, nil)
	var jerr error
	h.do(func() { _, _, jerr = h.m.JobOrder(99999) })
	var nsj *NoSuchJobError
	if !errors.As(jerr, &nsj) {
		t.Errorf("JobOrder of a missing job: %v", jerr)
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
