// Package audit is Vigil's auditing guest: it owns the audit policy
// (/etc/vigil/audit.toml: mode, default verdict, decision deadline, rules),
// the decision of each fanotify exec/open permission event against it, the
// audit log with its rotation, and reloading the policy while Vigil runs.
//
// The guest is an observer of the loop like any other: it registers one
// deciding observer for fanotify "exec" and "open" events and answers each
// hold with loop.Answer. Its observer's HoldTimeout and HoldDefault are the
// policy's decision-timeout and timeout-verdict, so an auditor that is stuck
// (a hash of a huge file on a slow disk, a bug) is overruled by the loop and
// cannot hang the machine.
//
// The policy is an immutable snapshot behind an atomic pointer in the
// Auditor, so the same rules can also be evaluated off the loop by the
// fanotify reader (Auditor.Inline) for Vigil's own forked children, which
// the loop may be waiting on. Reload swaps the pointer; a broken file keeps
// the old snapshot and reports file:line.
//
// The package does not import the fanotify source nor the unit supervisor:
// marks are asked through the Marker interface, and the unit of a process is
// read off its cgroup path ("/system.slice/foo.service" -> foo.service).
package audit
