package units

import (
	"fmt"
	"sort"

	"vigil/units/api"
)

// NoSuchJobError says no pending job has that ID.
type NoSuchJobError struct{ ID uint64 }

func (e *NoSuchJobError) Error() string { return fmt.Sprintf("job %d does not exist", e.ID) }

// CancelJob cancels a pending job, as `systemctl cancel` asks. A waiting
// job is removed; a running one ends at once while its unit keeps the
// state it is in (a service that is starting goes on starting), as in
// systemd. Either way the job finishes with result "canceled", and jobs
// that required it (start jobs of units that Require or BindTo its unit)
// fail with "dependency".
func (m *Manager) CancelJob(id uint64) error {
	j := m.jobs[id]
	if j == nil {
		return &NoSuchJobError{ID: id}
	}
	j.Unit.infof("Job %s/%s canceled.", j.Unit.Name, j.Type)
	m.finishJob(j, api.ResultCanceled, "canceled on request")
	return nil
}

// ClearJobs cancels every pending job, oldest first, and says how many it
// canceled. Canceling one may fail others with "dependency": those count
// as gone, not canceled.
func (m *Manager) ClearJobs() int {
	ids := make([]uint64, 0, len(m.jobs))
	for id := range m.jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	n := 0
	for _, id := range ids {
		if _, ok := m.jobs[id]; ok && m.CancelJob(id) == nil {
			n++
		}
	}
	return n
}

// cancelRequest serves the control protocol's "cancel": the named jobs,
// or every job when none is named.
func (m *Manager) cancelRequest(args api.CancelArgs) (api.CancelResult, error) {
	var res api.CancelResult
	if len(args.IDs) == 0 {
		res.Canceled = m.ClearJobs()
		return res, nil
	}
	for _, id := range args.IDs {
		if err := m.CancelJob(id); err != nil {
			return res, err
		}
		res.Canceled++
	}
	return res, nil
}
