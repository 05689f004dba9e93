// Package observer is Vigil's event core: one loop that owns all decisions,
// sources that turn kernel and user-space interfaces into events, and the
// guest API through which anyone (the unit supervisor, the auditor, outside
// programs) registers observers with their actors and callbacks.
//
// The loop is single-threaded on purpose. Sources run in their own
// goroutines and hand events over through bounded queues; a full queue drops
// the event and counts the drop instead of blocking the source. Everything a
// guest does in response (its callbacks and actors) runs on the loop
// goroutine, so guest state needs no locks as long as it is only touched from
// there; other goroutines talk to the loop with Do. A source's goroutines
// run under Keep (Source.Keep): a panic or an error costs a restart with
// backoff, counted in SourceInfo, never the source.
//
// An event may carry a Hold: the kernel (or a peer) is waiting for a verdict.
// The hold is released exactly once, on the loop goroutine, and never before
// every matching observer has been shown the event. Who decides:
//
//   - Every matching observer with Decides is asked and must Answer within
//     its own HoldTimeout; when that passes it is overruled with its
//     HoldDefault (and counted). Hold.Deadline, counted from dispatch,
//     overrules every decider still waiting. Unregistering a decider counts
//     as its HoldDefault.
//   - A "verdict" action is its observer's answer, given during dispatch: one
//     vote like a decider's Answer, not a release that cuts others short. An
//     observer that both Decides and has a verdict action answers its share
//     with it.
//   - When nobody is left to wait for, the verdict is deny if any answer,
//     vote or overruling default was deny, allow if any was given, and the
//     Hold's Default if there was none (no deciders, no verdict actions).
//   - Release, the source's own decision, ends the wait with exactly its
//     verdict. A held event dropped at a full source is released with its
//     Default.
//
// A guest that never answers therefore never hangs the machine.
//
// The package knows nothing of units: starting a unit is an actor kind that
// the supervisor defines, the same way an outside guest would.
package observer
