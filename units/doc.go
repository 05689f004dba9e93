// Package units is Vigil's unit manager: it holds the loaded units and
// their dependency graph, turns requests into transactions of jobs, runs
// the jobs as ordering allows, and drives each unit type's behaviour.
//
// The manager is a guest of the observer (package observer) like any
// other: it learns of process exits, control requests and timers through
// observers it registers, and everything it does runs on the observer's
// loop goroutine, which therefore owns all manager state.
//
// The job engine (job.go, transaction.go) knows nothing of unit types: it
// asks a unit's Behaviour to start, stop or reload and learns the outcome
// from the state changes the behaviour reports through Unit.SetState.
// Each type (service.go, target.go, ...) implements Behaviour.
package units
