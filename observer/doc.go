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
// there; other goroutines talk to the loop with Do.
//
// An event may carry a Hold: the kernel (or a peer) is waiting for a verdict.
// Observers that registered to decide holds are asked; the hold is released
// exactly once, with the combined verdict (deny wins) or, when the deadline
// passes first, with the observer's configured default verdict. A guest that
// never answers therefore never hangs the machine.
//
// The package knows nothing of units: starting a unit is an actor kind that
// the supervisor defines, the same way an outside guest would.
package observer
