// Package autofs is the observer's source for the kernel's autofs v5
// protocol, direct mounts only: it owns the /dev/autofs control device (the
// autofs_dev_ioctl commands), mounting an autofs trigger at a directory,
// reading the kernel's request packets from the pipe it hands the kernel,
// and answering every request exactly once.
//
// A process that touches a direct autofs mount point is put to sleep by the
// kernel, which writes a "missing" packet with a wait-queue token to the
// pipe. The sleeper wakes when the daemon answers the token: READY (the
// mount is in place; the walk goes on into it) or FAIL (the access fails
// with the given errno). Expiry is the reverse: the daemon asks the kernel
// (the EXPIRE ioctl, which blocks) whether the mount is idle; if it is, the
// kernel sends an "expire" packet and waits for the daemon to unmount and
// answer that token too.
//
// Each request becomes a held observer event (source Options.Source, kind
// "missing" or "expire", attributes where, token, pid, uid, gid) whose
// Hold.Release answers the kernel: Allow is READY, Deny is FAIL. The loop
// releases a hold exactly once; Mount.Close answers whatever the loop has
// not released yet with FAIL and puts the mount in catatonic mode, so no
// accessor is left sleeping when Vigil stops serving (the kernel itself has
// no timeout for these waits).
//
// Process groups: the kernel lets the autofs "daemon" (every process in the
// process group named at mount time) walk through the trigger without
// triggering it, which is what lets Vigil mount on top of it. Mount uses
// the caller's own process group. The kernel refuses process group 0, the
// group PID 1 starts in: Vigil's PID 1 becomes a session leader (setsid, in
// init/early's console setup) before any unit starts, which gives it
// process group 1. Units' processes run in sessions of their own, so they
// do trigger the mount, as they should.
//
// The package imports nothing of Vigil but the observer core, and is usable
// alone: the automount units (units/automount.go) start the mount unit on a
// "missing" request and stop it on an "expire" request.
package autofs
