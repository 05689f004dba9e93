// Package early owns what PID 1 does before it starts any unit: mounting
// the API file systems, taking the console as stdio, the host name, the
// loopback interface, the machine ID, seeding the random pool, the
// /run/systemd/system flag directory, and detecting containers and
// virtualization. Every function takes the root it works on (or touches
// only namespaced kernel state), so each is tested without being PID 1:
// in a temp dir, a private mount namespace, or a new UTS/net namespace.
package early

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"vigil/init/shutdown"
)

// MountOptions adjusts MountAPI.
type MountOptions struct {
	// Container skips what a container manager provides or forbids:
	// devtmpfs (a tmpfs /dev is used if /dev is missing), securityfs,
	// debugfs and the other kernel-debugging file systems.
	Container bool
	// MountinfoPath is read to skip what is mounted already; empty means
	// /proc/self/mountinfo (read after /proc is mounted).
	MountinfoPath string
}

// apiMount is one API file system mount.
type apiMount struct {
	source, target, fstype string
	flags                  uintptr
	// data are the options to try, in order (later ones are fallbacks
	// for kernels that reject an option).
	data []string
	// fallbackType is mounted instead when fstype fails (devtmpfs -> tmpfs).
	fallbackType string
	// optional mounts need their fstype in /proc/filesystems.
	optional bool
	// notInContainer mounts are skipped with MountOptions.Container.
	notInContainer bool
}

const (
	nosuidNodevNoexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	// ttyGID is the "tty" group's GID on Debian and in systemd's defaults.
	ttyGID = 5
)

// apiMounts lists the API file systems in mount order (proc first: the
// others are checked against /proc/self/mountinfo and /proc/filesystems).
func apiMounts() []apiMount {
	return []apiMount{
		{source: "proc", target: "/proc", fstype: "proc", flags: nosuidNodevNoexec},
		{source: "sysfs", target: "/sys", fstype: "sysfs", flags: nosuidNodevNoexec},
		{source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: unix.MS_NOSUID | unix.MS_STRICTATIME,
			data: []string{"mode=755"}, fallbackType: "tmpfs"},
		{source: "securityfs", target: "/sys/kernel/security", fstype: "securityfs", flags: nosuidNodevNoexec, optional: true, notInContainer: true},
		{source: "tmpfs", target: "/dev/shm", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME,
			data: []string{"mode=1777"}},
		{source: "devpts", target: "/dev/pts", fstype: "devpts", flags: unix.MS_NOSUID | unix.MS_NOEXEC,
			data: []string{fmt.Sprintf("mode=620,gid=%d,ptmxmode=000", ttyGID), "mode=620,ptmxmode=000"}},
		{source: "tmpfs", target: "/run", fstype: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_STRICTATIME,
			data: []string{"mode=755,size=20%,nr_inodes=800k", "mode=755"}},
		{source: "cgroup2", target: "/sys/fs/cgroup", fstype: "cgroup2", flags: nosuidNodevNoexec,
			data: []string{"nsdelegate,memory_recursiveprot", "nsdelegate", ""}},
		{source: "pstore", target: "/sys/fs/pstore", fstype: "pstore", flags: nosuidNodevNoexec, optional: true, notInContainer: true},
		{source: "bpf", target: "/sys/fs/bpf", fstype: "bpf", flags: nosuidNodevNoexec, data: []string{"mode=700"}, optional: true, notInContainer: true},
		{source: "mqueue", target: "/dev/mqueue", fstype: "mqueue", flags: nosuidNodevNoexec, optional: true},
		{source: "debugfs", target: "/sys/kernel/debug", fstype: "debugfs", flags: nosuidNodevNoexec, optional: true, notInContainer: true},
		{source: "tracefs", target: "/sys/kernel/tracing", fstype: "tracefs", flags: nosuidNodevNoexec, optional: true, notInContainer: true},
		{source: "configfs", target: "/sys/kernel/config", fstype: "configfs", flags: nosuidNodevNoexec, optional: true, notInContainer: true},
	}
}

// MountAPI mounts the API file systems under root ("" means "/"): /proc,
// /sys, /dev (devtmpfs, or tmpfs when that fails), /dev/shm, /dev/pts,
// /run, /sys/fs/cgroup (cgroup2 with nsdelegate and memory_recursiveprot
// where the kernel takes them), and securityfs, pstore, bpf, mqueue,
// debugfs, tracefs and configfs where /proc/filesystems lists them. What is
// mounted already is skipped; mount points are created. Then the /dev
// symlinks (fd, stdin, stdout, stderr, core) are made. Every failure is
// returned and none stops the rest.
func MountAPI(root string, opts MountOptions) []error {
	if root == "" {
		root = "/"
	}
	var errs []error
	var filesystems map[string]bool
	for _, m := range apiMounts() {
		if opts.Container && m.notInContainer {
			continue
		}
		target := filepath.Join(root, m.target)
		mounted, err := isMountPoint(opts.MountinfoPath, target)
		if err != nil && m.target != "/proc" {
			errs = append(errs, err)
		}
		if mounted {
			continue
		}
		if m.optional {
			if filesystems == nil {
				filesystems = readFilesystems(root)
			}
			if !filesystems[m.fstype] {
				continue
			}
			// Optional mounts need their directory to exist already: sysfs
			// creates /sys/fs/bpf and friends when the kernel has them.
			if _, err := os.Stat(target); err != nil && strings.HasPrefix(m.target, "/sys/") {
				continue
			}
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("create mount point %s: %w", target, err))
			continue
		}
		if err := mountWithFallbacks(m, target, opts.Container); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, devSymlinks(root)...)
	return errs
}

func mountWithFallbacks(m apiMount, target string, container bool) error {
	data := m.data
	if len(data) == 0 {
		data = []string{""}
	}
	fstype := m.fstype
	if container && fstype == "devtmpfs" {
		fstype = m.fallbackType
	}
	var first error
	for _, d := range data {
		err := unix.Mount(m.source, target, fstype, m.flags, d)
		if err == nil {
			return nil
		}
		if first == nil {
			first = fmt.Errorf("mount %s on %s (%s): %w", fstype, target, d, err)
		}
	}
	if m.fallbackType != "" && fstype != m.fallbackType {
		if err := unix.Mount(m.fallbackType, target, m.fallbackType, m.flags, data[len(data)-1]); err == nil {
			return nil
		}
	}
	return first
}

// isMountPoint reports whether target appears as a mount point in the
// mount table. A table that cannot be read (no /proc yet) means "not mounted".
func isMountPoint(mountinfoPath, target string) (bool, error) {
	if mountinfoPath == "" {
		mountinfoPath = shutdown.DefaultMountinfo
	}
	mounts, err := shutdown.ReadMountinfo(mountinfoPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	for _, m := range mounts {
		if m.MountPoint == target {
			return true, nil
		}
	}
	return false, nil
}

// readFilesystems returns the file system types the kernel knows, from
// root/proc/filesystems (or /proc/filesystems).
func readFilesystems(root string) map[string]bool {
	out := make(map[string]bool)
	f, err := os.Open(filepath.Join(root, "proc/filesystems"))
	if err != nil {
		if f, err = os.Open("/proc/filesystems"); err != nil {
			return out
		}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			out[fields[len(fields)-1]] = true
		}
	}
	return out
}

// devSymlinks creates the /dev links programs expect, leaving existing
// entries alone.
func devSymlinks(root string) []error {
	links := [][2]string{
		{"/proc/self/fd", "dev/fd"},
		{"/proc/self/fd/0", "dev/stdin"},
		{"/proc/self/fd/1", "dev/stdout"},
		{"/proc/self/fd/2", "dev/stderr"},
	}
	if _, err := os.Stat(filepath.Join(root, "proc/kcore")); err == nil {
		links = append(links, [2]string{"/proc/kcore", "dev/core"})
	}
	var errs []error
	for _, l := range links {
		p := filepath.Join(root, l[1])
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Symlink(l[0], p); err != nil {
			errs = append(errs, fmt.Errorf("create /dev symlink %s: %w", p, err))
		}
	}
	return errs
}

// CreateRunSystemd creates root/run/systemd/system, which makes
// sd_booted() true for the programs Vigil starts, and root/run/vigil.
func CreateRunSystemd(root string) error {
	var errs []error
	for _, dir := range []string{"run/systemd/system", "run/vigil"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			errs = append(errs, fmt.Errorf("create %s: %w", filepath.Join(root, dir), err))
		}
	}
	return errors.Join(errs...)
}
