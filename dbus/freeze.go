package dbus

import (
	"errors"
	"time"

	"vigil/units"
	"vigil/units/api"
)

// Freezing (systemctl freeze/thaw) and job ordering (systemctl list-jobs
// --after/--before), as systemd's src/core/dbus-unit.c, dbus-manager.c and
// dbus-job.c serve them. A Manager that does not implement unitFreezer or
// jobOrderer answers NotSupported.

// Errors systemd gives for a unit that cannot be frozen now.
const (
	ErrNameUnitBusy     = "org.freedesktop.systemd1.UnitBusy"
	ErrNameUnitInactive = "org.freedesktop.systemd1.UnitInactive"
)

// freezeWait bounds how long a Freeze/Thaw call waits for the kernel to
// report the group frozen (or thawed) before it answers, as systemd
// answers only once the freezer is done.
const freezeWait = 10 * time.Second

// unitFreezer freezes and thaws units.
type unitFreezer interface {
	// SetFrozen freezes (or thaws) name and waits until the kernel says
	// it is done.
	SetFrozen(name string, frozen bool) error
}

// unitReferrer takes unit references (RefUnit): the manager's side; the
// server records who holds them (refs.go).
type unitReferrer interface {
	RefUnit(name string) error
}

// jobOrderer reads the job engine's ordering.
type jobOrderer interface {
	// JobOrder lists the jobs job id waits for (before) and the jobs
	// that wait for it (after).
	JobOrder(id uint64) (before, after []Job, err error)
}

func (a *unitsAdapter) SetFrozen(name string, frozen bool) error {
	var ferr error
	err := a.onLoop(func() {
		if frozen {
			ferr = a.m.Freeze(name)
		} else {
			ferr = a.m.Thaw(name)
		}
	})
	if err != nil {
		return err
	}
	var nf *units.NotFoundError
	switch {
	case errors.As(ferr, &nf):
		return Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	case errors.Is(ferr, units.ErrFreezeNotSupported):
		return Errorf(ErrNameNotSupported, "Unit '%s' does not support freezing.", name)
	case errors.Is(ferr, units.ErrFreezeUnitBusy):
		return Errorf(ErrNameUnitBusy, "Unit has a pending job.")
	case errors.Is(ferr, units.ErrFreezeUnitInactive):
		return Errorf(ErrNameUnitInactive, "Unit is inactive.")
	case ferr != nil:
		return Errorf(ErrNameFailed, "%v", ferr)
	}
	want := units.FreezerRunning
	if frozen {
		want = units.FreezerFrozen
	}
	// The kernel freezes asynchronously; wait off the loop, visiting it
	// only to read the state.
	deadline := time.Now().Add(freezeWait)
	for {
		var state string
		if err := a.onLoop(func() { state = a.m.FreezerState(name) }); err != nil {
			return err
		}
		if state == want {
			return nil
		}
		if time.Now().After(deadline) {
			return Errorf(ErrNameFailed, "Unit %s is still %s after %v.", name, state, freezeWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *unitsAdapter) RefUnit(name string) error {
	var rerr error
	if err := a.onLoop(func() { rerr = a.m.RefUnit(name) }); err != nil {
		return err
	}
	var nf *units.NotFoundError
	if errors.As(rerr, &nf) {
		return Errorf(ErrNameNoSuchUnit, "Unit %s not loaded.", name)
	}
	return rerr
}

// refUnit is RefUnit: the caller holds name until it calls UnrefUnit or
// leaves. systemctl's unit waiter (freeze, thaw, clean) takes one before
// it watches a unit.
func (c *call) refUnit(name string) ([]any, error) {
	r, ok := c.s.m.(unitReferrer)
	if !ok {
		return nil, Errorf(ErrNameNotSupported, "Unit references are not supported.")
	}
	if err := r.RefUnit(name); err != nil {
		return nil, err
	}
	c.s.holdRef(c, name)
	return nil, nil
}

func (a *unitsAdapter) JobOrder(id uint64) (before, after []Job, err error) {
	var oerr error
	conv := func(l []api.JobInfo) []Job {
		out := make([]Job, 0, len(l))
		for _, j := range l {
			out = append(out, Job{ID: j.ID, Unit: j.Unit, Type: j.Type, State: j.State, Result: j.Result})
		}
		return out
	}
	err = a.onLoop(func() {
		b, af, e := a.m.JobOrder(id)
		before, after, oerr = conv(b), conv(af), e
	})
	if err != nil {
		return nil, nil, err
	}
	var nsj *units.NoSuchJobError
	if errors.As(oerr, &nsj) {
		return nil, nil, Errorf(ErrNameNoSuchJob, "Job %d does not exist.", id)
	}
	return before, after, oerr
}

func (c *call) setFrozen(name string, frozen bool) ([]any, error) {
	if !validUnitName(name) {
		return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", name)
	}
	f, ok := c.s.m.(unitFreezer)
	if !ok {
		return nil, Errorf(ErrNameNotSupported, "Unit '%s' does not support freezing.", name)
	}
	return nil, f.SetFrozen(name, frozen)
}

// jobOrder answers GetJobAfter/GetJobBefore: a(usssoo), as ListJobs.
func (c *call) jobOrder(id uint64, after bool) ([]any, error) {
	o, ok := c.s.m.(jobOrderer)
	if !ok {
		return nil, Errorf(ErrNameNotSupported, "Job ordering is not available.")
	}
	before, later, err := o.JobOrder(id)
	if err != nil {
		return nil, err
	}
	jobs := before
	if after {
		jobs = later
	}
	out := []jobRow{}
	for _, j := range jobs {
		out = append(out, jobRow{uint32(j.ID), j.Unit, j.Type, j.State, JobPath(j.ID), UnitPath(j.Unit)})
	}
	return []any{out}, nil
}

// freezeManagerMethods are the Manager's FreezeUnit, ThawUnit,
// GetJobAfter, GetJobBefore, RefUnit and UnrefUnit.
func freezeManagerMethods() []method {
	jobID := func(c *call) uint64 { id, _ := c.args[0].(uint32); return uint64(id) }
	return []method{
		{name: "FreezeUnit", in: "s", argNames: []string{"name"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			return c.setFrozen(c.str(0), true)
		}},
		{name: "ThawUnit", in: "s", argNames: []string{"name"}, write: true, fn: func(c *call, _ *object) ([]any, error) {
			return c.setFrozen(c.str(0), false)
		}},
		{name: "RefUnit", in: "s", argNames: []string{"name"}, fn: func(c *call, _ *object) ([]any, error) {
			if !validUnitName(c.str(0)) {
				return nil, Errorf(ErrNameInvalidArgs, "Unit name %s is not valid.", c.str(0))
			}
			return c.refUnit(c.str(0))
		}},
		{name: "UnrefUnit", in: "s", argNames: []string{"name"}, fn: func(c *call, _ *object) ([]any, error) {
			c.s.dropRef(c, c.str(0))
			return nil, nil
		}},
		{name: "GetJobAfter", in: "u", out: "a(usssoo)", argNames: []string{"id", "jobs"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.jobOrder(jobID(c), true)
		}},
		{name: "GetJobBefore", in: "u", out: "a(usssoo)", argNames: []string{"id", "jobs"}, fn: func(c *call, _ *object) ([]any, error) {
			return c.jobOrder(jobID(c), false)
		}},
	}
}

// freezeUnitMethods are the Unit's Freeze and Thaw.
func freezeUnitMethods() []method {
	return []method{
		{name: "Freeze", write: true, fn: func(c *call, o *object) ([]any, error) { return c.setFrozen(o.unit.ID, true) }},
		{name: "Thaw", write: true, fn: func(c *call, o *object) ([]any, error) { return c.setFrozen(o.unit.ID, false) }},
	}
}

// jobOrderMethods are the Job's GetAfter and GetBefore.
func jobOrderMethods() []method {
	return []method{
		{name: "GetAfter", out: "a(usssoo)", argNames: []string{"jobs"}, fn: func(c *call, o *object) ([]any, error) {
			return c.jobOrder(o.job.ID, true)
		}},
		{name: "GetBefore", out: "a(usssoo)", argNames: []string{"jobs"}, fn: func(c *call, o *object) ([]any, error) {
			return c.jobOrder(o.job.ID, false)
		}},
	}
}
