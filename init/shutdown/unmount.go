package shutdown

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultMountinfo is the mount table of the calling process.
const DefaultMountinfo = "/proc/self/mountinfo"

// maxUnmountPasses bounds the retry loop: each pass unmounts what it can,
// which may free the parents of what failed.
const maxUnmountPasses = 8

// IsAPIMount reports whether a mount belongs to the kernel's API file
// systems (/proc, /sys, /dev and what is mounted below them). They hold no
// data to lose, PID 1 still uses them, and they cannot always be
// unmounted, so shutdown leaves them alone. /run itself is kept for the
// same reason; mounts below it are not API mounts.
func IsAPIMount(m Mount) bool {
	for _, api := range []string{"/proc", "/sys", "/dev"} {
		if m.MountPoint == api || strings.HasPrefix(m.MountPoint, api+"/") {
			return true
		}
	}
	return m.MountPoint == "/run"
}

// isInitramfsRoot reports whether "/" is the initramfs (rootfs, ramfs or
// tmpfs), which cannot be remounted read-only usefully: it is only synced.
func isInitramfsRoot(m Mount) bool {
	switch m.FSType {
	case "rootfs", "ramfs", "tmpfs":
		return true
	}
	return false
}

// UnmountResult says what UnmountAll did.
type UnmountResult struct {
	// Unmounted are the mount points cleanly unmounted.
	Unmounted []string
	// Lazy are the mount points that stayed busy and were detached with
	// MNT_DETACH (after a read-only remount where possible).
	Lazy []string
	// RootReadOnly is true when "/" was remounted read-only.
	RootReadOnly bool
	// Problems are the errors met; empty on a clean run.
	Problems []error
}

// Clean reports whether everything was unmounted or remounted read-only
// without resorting to lazy detaching and without errors.
func (r UnmountResult) Clean() bool {
	return len(r.Lazy) == 0 && len(r.Problems) == 0
}

// UnmountAll unmounts every file system of the mount table at
// mountinfoPath (DefaultMountinfo when empty) except the API file systems,
// deepest first, then remounts "/" read-only (an initramfs root is only
// synced). clean is false if anything had to be detached lazily or failed;
// problems says what.
func UnmountAll(mountinfoPath string) (clean bool, problems []error) {
	r := UnmountUnder(mountinfoPath, "/")
	return r.Clean(), r.Problems
}

// UnmountUnder is UnmountAll restricted to the mounts at or below prefix.
// Only when prefix is "/" is the root remounted read-only. Busy mounts are
// retried while other unmounts make progress, then remounted read-only and
// detached with MNT_DETACH as a last resort.
func UnmountUnder(mountinfoPath, prefix string) UnmountResult {
	if mountinfoPath == "" {
		mountinfoPath = DefaultMountinfo
	}
	prefix = path.Clean("/" + prefix)
	var res UnmountResult
	unix.Sync()

	busy := make(map[string]error)
	for pass := 0; pass < maxUnmountPasses; pass++ {
		mounts, err := ReadMountinfo(mountinfoPath)
		if err != nil {
			res.Problems = append(res.Problems, err)
			return res
		}
		progress := false
		pending := 0
		for _, m := range UnmountOrder(mounts) {
			if !wanted(m, prefix) {
				continue
			}
			pending++
			err := unix.Unmount(m.MountPoint, unix.UMOUNT_NOFOLLOW)
			if err == nil || errors.Is(err, unix.EINVAL) && !stillMounted(mountinfoPath, m.ID) {
				delete(busy, m.MountPoint)
				res.Unmounted = append(res.Unmounted, m.MountPoint)
				progress = true
				continue
			}
			busy[m.MountPoint] = err
		}
		if pending == 0 || !progress {
			break
		}
	}

	// Last resort for what is still mounted: make it read-only so its
	// data is safe, then detach it from the tree.
	mounts, err := ReadMountinfo(mountinfoPath)
	if err != nil {
		res.Problems = append(res.Problems, err)
		return res
	}
	for _, m := range UnmountOrder(mounts) {
		if !wanted(m, prefix) {
			continue
		}
		cause := busy[m.MountPoint]
		if !strings.Contains(","+m.Options+",", ",ro,") {
			_ = unix.Mount("", m.MountPoint, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
		if err := unix.Unmount(m.MountPoint, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			if errors.Is(err, unix.EINVAL) && !stillMounted(mountinfoPath, m.ID) {
				continue // gone meanwhile: a parent's detach took it along
			}
			res.Problems = append(res.Problems, fmt.Errorf("unmount %s (%s): %v; detach: %w", m.MountPoint, m.FSType, cause, err))
			continue
		}
		res.Lazy = append(res.Lazy, m.MountPoint)
		res.Problems = append(res.Problems, fmt.Errorf("unmount %s (%s): %v: detached lazily", m.MountPoint, m.FSType, cause))
	}

	if prefix == "/" {
		remountRoot(mountinfoPath, &res)
	}
	unix.Sync()
	return res
}

// wanted selects the mounts UnmountUnder works on.
func wanted(m Mount, prefix string) bool {
	if m.MountPoint == "/" || IsAPIMount(m) {
		return false
	}
	if prefix == "/" {
		return true
	}
	return m.MountPoint == prefix || strings.HasPrefix(m.MountPoint, prefix+"/")
}

// stillMounted reports whether the mount with this ID is in the table.
func stillMounted(mountinfoPath string, id int) bool {
	mounts, err := ReadMountinfo(mountinfoPath)
	if err != nil {
		return true
	}
	for _, m := range mounts {
		if m.ID == id {
			return true
		}
	}
	return false
}

// remountRoot remounts "/" read-only unless it is an initramfs.
func remountRoot(mountinfoPath string, res *UnmountResult) {
	mounts, err := ReadMountinfo(mountinfoPath)
	if err != nil {
		res.Problems = append(res.Problems, err)
		return
	}
	var root *Mount
	for i := range mounts {
		if mounts[i].MountPoint == "/" {
			root = &mounts[i] // the last one is the visible one
		}
	}
	if root == nil || isInitramfsRoot(*root) {
		return
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		res.Problems = append(res.Problems, fmt.Errorf("remount / (%s) read-only: %w", root.FSType, err))
		return
	}
	res.RootReadOnly = true
}
