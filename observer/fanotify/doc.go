// Package fanotify is the observer's source of file access permission
// events: it owns one fanotify group (FAN_CLASS_CONTENT, unlimited queue),
// the marks on it, and the reader goroutine that turns each held open,
// read or exec into an observer event whose Hold writes FAN_ALLOW or
// FAN_DENY back to the kernel. The constructor is New (Open is the name of
// the open-access Mask bit).
//
// Who is never held. The reader allows at once, without the loop:
//   - Vigil's own accesses (the event's pid is ours): the loop would wait
//     on itself;
//   - accesses no mark asked for (the kernel mark is wider than the marks:
//     an ancestor standing in for a missing path, a directory's other
//     children, a mount for MarkTree);
//   - Vigil's own children still running Vigil's image (forked, not yet
//     exec'd: PPid is ours and /proc/pid/exe is our executable, or an
//     image added by AddOwnImage, by device and inode) go through
//     Options.Inline instead, since the loop may be waiting for that very
//     exec.
//
// Never reported at all: accesses to our own executable. New puts an
// ignore mark of every permission event on its inode (see
// ignoreOwnExecutable), so that a vfork child of ours exec'ing our image
// (units/exec's trampoline) is never held: answering it would need the
// reader goroutine while a Go thread of ours is stuck in vfork, which a
// garbage collection starting then turns into a deadlock. Callers that
// vfork other programs ask IfUnmarked first, or go through the trampoline
// or units/exec's exec stub, whose memfd AddOwnImage gives the same ignore
// mark.
//
// Every other covered access is posted to the loop (source "fanotify",
// kind "open", "access" or "exec", attrs path, pid, uid, exe, comm, cgroup,
// mark) with a Hold. The hold is answered exactly once, whichever comes
// first: the loop's Release, or the source's own backstop timer
// (Options.Deadline, one time.AfterFunc per held event, independent of the
// loop), which answers Options.Default. A held event the loop's bounded
// source has no room for is answered Default at once. The kernel never
// drops a permission event (the queue is unlimited); an overflow record,
// should one come, is counted and logged once per burst.
//
// Marks. Mark on a file marks its inode; on a directory, the directory and
// the files directly in it (FAN_EVENT_ON_CHILD, FAN_ONDIR). A path that
// does not exist yet is covered through its nearest existing ancestor (with
// open events of its children added, so that the path, once created there,
// is held even before it is marked itself). The path watcher (pathWatch,
// one inotify descriptor) follows every component of each mark's path in
// the directory above it, down to the path itself or its first missing
// component, one watch per distinct directory. When one appears, goes or
// is replaced (a directory higher up renamed included), the marks are
// resolved again at once; nothing polls. A file system mounted over a
// component of the path or over the file (or unmounted from there), which
// no inotify record reports, is caught by the mount follower (mountFollow:
// POLLPRI on /proc/self/mountinfo, so the mount namespace the source was
// made in, PID 1's). The kernel mark of an inode its path no longer leads
// to (hidden by a mount, renamed away) is removed through the inode's
// file handle (removeUnreachable). The reader does the same, before
// answering, for an open of a pending mark's first missing component (see
// catchUp). A file deeper below the ancestor, created and opened at once,
// may still beat its mark by the microseconds the watcher takes: the
// kernel reports that open to no mark the source has (docs/fanotify.md).
//
// The reader and the path watcher run under observer.Keep: a panic or a
// read error restarts them with backoff, counted in the loop's source
// statistics.
// Note also that open(2) of a path that does not exist fails with ENOENT
// before any permission check: only accesses after its creation are held.
// MarkTree marks the mount dir is on (FAN_MARK_MOUNT) and filters by path
// prefix: every access of those kinds on that mount takes a round trip
// through the reader (a few microseconds, answered at once when outside the
// tree), and submounts are not covered. Marks follow inodes: a file
// replaced by rename is marked again on its new inode once the path
// watcher sees the rename. Paths on procfs are refused (the reader reads /proc
// itself and would wait on its own opens); refusals that mean "no
// permission events here" wrap ErrUnavailable so callers can fall back to
// inotify.
package fanotify
