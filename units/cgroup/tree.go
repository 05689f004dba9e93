// Package cgroup owns Vigil's cgroup2 tree: where each unit's group lives
// (systemd's layout: init.scope for PID 1, system.slice/NAME.service,
// slices nested by the dashes of their names), creating and removing
// groups, enabling controllers down the tree, writing resource limits,
// listing, signalling and killing a group's processes, and reading its
// accounting.
//
// It writes the kernel's files directly rather than through
// github.com/containerd/cgroups/v3/cgroup2: that library writes
// +controller into every ancestor up to the root, waits on processes in
// its Kill fallback (which would steal exit statuses from Vigil's one
// reaper), and adds about 7 MB to the binary for what is here a few
// hundred lines of file writes (see docs/benchmarks.md).
//
// A Tree is used from one goroutine (the observer loop's); it caches
// which controllers it has enabled, and nothing else.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Tree is the cgroup2 subtree a manager owns.
type Tree struct {
	root string
	// mount is where the cgroup2 hierarchy is mounted, for Name.
	mount string
	// available are the controllers the root's parent hands down (the
	// root's cgroup.controllers).
	available map[string]bool
	// enabled caches the controllers written to each directory's
	// cgroup.subtree_control, by absolute path.
	enabled map[string]map[string]bool
}

// Open takes the subtree rooted at dir, which must be a directory of a
// mounted cgroup2 file system.
func Open(dir string) (*Tree, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("cgroup root %s: %w", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("cgroup root %s: not on a cgroup2 file system", dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup root %s: %w", dir, err)
	}
	t := &Tree{root: filepath.Clean(dir), available: map[string]bool{}, enabled: map[string]map[string]bool{}}
	if mount, err := Mountpoint(); err == nil && strings.HasPrefix(t.root+"/", filepath.Clean(mount)+"/") {
		t.mount = filepath.Clean(mount)
	}
	for _, c := range strings.Fields(string(data)) {
		t.available[c] = true
	}
	return t, nil
}

// Mountpoint finds where the cgroup2 hierarchy is mounted.
func Mountpoint() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2: %w", err)
	}
	return Cgroup2Mount(string(data))
}

// OwnCgroup is the absolute directory of the cgroup the process pid is
// in (0: the calling process).
func OwnCgroup(pid int) (string, error) {
	mount, err := Mountpoint()
	if err != nil {
		return "", err
	}
	name := "/proc/self/cgroup"
	if pid > 0 {
		name = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	p, err := CgroupOfProc(string(data))
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return filepath.Join(mount, p), nil
}

// ForPID1 is the whole cgroup2 hierarchy, as PID 1 owns it.
func ForPID1() (*Tree, error) {
	mount, err := Mountpoint()
	if err != nil {
		return nil, err
	}
	return Open(mount)
}

// ForManager picks the subtree of a manager that is not PID 1: dir when
// it is given (created if missing); otherwise the manager's own cgroup,
// when that is writable and not the hierarchy's root (which belongs to
// the system's init). In its own cgroup the manager first moves itself
// into a child, init.scope, so that controllers can be enabled for its
// units. A nil Tree with a nil error means "run without cgroups"; the
// warning then says why, in one line for the log.
func ForManager(dir string) (t *Tree, warning string, err error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", fmt.Errorf("cgroup root: %w", err)
		}
		t, err := Open(dir)
		return t, "", err
	}
	own, err := OwnCgroup(0)
	if err != nil {
		return nil, fmt.Sprintf("running without cgroups: %v", err), nil
	}
	mount, _ := Mountpoint()
	if filepath.Clean(own) == filepath.Clean(mount) {
		return nil, "running without cgroups: the manager is in the root cgroup, which is not delegated to it (start it in a delegated cgroup or give it one)", nil
	}
	if unix.Access(own, unix.W_OK) != nil || unix.Access(filepath.Join(own, "cgroup.procs"), unix.W_OK) != nil {
		return nil, fmt.Sprintf("running without cgroups: the manager's cgroup %s is not writable (not delegated)", own), nil
	}
	t, err = Open(own)
	if err != nil {
		return nil, fmt.Sprintf("running without cgroups: %v", err), nil
	}
	if err := t.Ensure(InitScope); err != nil {
		return nil, fmt.Sprintf("running without cgroups: %v", err), nil
	}
	if err := t.Move(InitScope, os.Getpid()); err != nil {
		return nil, fmt.Sprintf("running without cgroups: %v", err), nil
	}
	return t, "", nil
}

// Root is the absolute directory of the tree.
func (t *Tree) Root() string { return t.root }

// Path is the absolute directory of rel.
func (t *Tree) Path(rel string) string { return filepath.Join(t.root, rel) }

// Name is group rel as the kernel names it in /proc/PID/cgroup: its path
// from the hierarchy's root, "/system.slice/foo.service".
func (t *Tree) Name(rel string) string {
	abs := t.Path(rel)
	if t.mount == "" {
		return abs
	}
	if name := strings.TrimPrefix(abs, t.mount); name != "" {
		return name
	}
	return "/"
}

// Available reports whether the kernel hands controller c to the tree.
func (t *Tree) Available(c string) bool { return t.available[c] }

// HasKill reports whether the kernel has cgroup.kill (5.14 and later).
func (t *Tree) HasKill() bool {
	_, err := os.Stat(filepath.Join(t.root, "cgroup.kill"))
	return err == nil
}

// Ensure creates the group rel and its parents.
func (t *Tree) Ensure(rel string) error {
	if err := os.MkdirAll(t.Path(rel), 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", rel, err)
	}
	return nil
}

// EnableControllers makes the controllers want usable in the group rel by
// enabling them in the subtree_control of every directory from the root
// down to rel's parent. Controllers the kernel does not hand to the tree
// are returned as missing, not as an error.
func (t *Tree) EnableControllers(rel string, want []string) (missing []string, err error) {
	var usable []string
	for _, c := range want {
		if t.available[c] {
			usable = append(usable, c)
		} else {
			missing = append(missing, c)
		}
	}
	if len(usable) == 0 || rel == "" {
		return missing, nil
	}
	dir := t.root
	for _, part := range strings.Split(filepath.Clean(rel), "/") {
		if err := t.enableIn(dir, usable); err != nil {
			return missing, err
		}
		dir = filepath.Join(dir, part)
	}
	return missing, nil
}

func (t *Tree) enableIn(dir string, ctrls []string) error {
	have := t.enabled[dir]
	if have == nil {
		have = map[string]bool{}
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			return fmt.Errorf("enable controllers in %s: %w", dir, err)
		}
		for _, c := range strings.Fields(string(data)) {
			have[c] = true
		}
		t.enabled[dir] = have
	}
	var add []string
	for _, c := range ctrls {
		if !have[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0); err != nil {
		// Forget the cache: another writer may have changed it.
		delete(t.enabled, dir)
		return fmt.Errorf("enable %s in %s: %w", strings.Join(add, " "), dir, err)
	}
	for _, c := range ctrls {
		have[c] = true
	}
	return nil
}

// Write writes value to the control file of group rel.
func (t *Tree) Write(rel, file, value string) error {
	p := filepath.Join(t.Path(rel), file)
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

// Read reads a control file of group rel.
func (t *Tree) Read(rel, file string) (string, error) {
	data, err := os.ReadFile(filepath.Join(t.Path(rel), file))
	return string(data), err
}

// OpenFD opens group rel as an O_PATH directory descriptor, for clone3's
// CLONE_INTO_CGROUP (exec.Spec.CgroupFD). The caller closes it.
func (t *Tree) OpenFD(rel string) (int, error) {
	fd, err := unix.Open(t.Path(rel), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", rel, err)
	}
	return fd, nil
}

// Move puts process pid (all its threads) into group rel.
func (t *Tree) Move(rel string, pid int) error {
	return t.Write(rel, "cgroup.procs", strconv.Itoa(pid))
}

// Procs lists the processes of group rel and every group below it.
func (t *Tree) Procs(rel string) ([]int, error) {
	var out []int
	err := filepath.WalkDir(t.Path(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("list processes of cgroup %s: %w", rel, err)
	}
	return out, nil
}

// Populated reports whether group rel or a group below it has a process.
// A group that does not exist is not populated.
func (t *Tree) Populated(rel string) (bool, error) {
	data, err := t.Read(rel, "cgroup.events")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	return ParseKeyed(data)["populated"] != 0, nil
}

// Signal sends sig to every process of group rel and below; it returns
// how many it reached.
func (t *Tree) Signal(rel string, sig syscall.Signal) (int, error) {
	pids, err := t.Procs(rel)
	n := 0
	for _, pid := range pids {
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n, err
}

// Kill SIGKILLs every process of group rel and below at once through
// cgroup.kill, which also catches processes forked meanwhile. On a kernel
// without it, it signals the listed processes a few rounds (it never
// waits for them: exits belong to the reaper).
func (t *Tree) Kill(rel string) error {
	err := t.Write(rel, "cgroup.kill", "1")
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, statErr := os.Stat(t.Path(rel)); statErr != nil {
		return nil // no group, nothing to kill
	}
	for round := 0; round < 4; round++ {
		n, err := t.Signal(rel, syscall.SIGKILL)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	return nil
}

// Remove deletes group rel and the groups below it (a delegated unit may
// have made some), deepest first. Missing groups are not an error; a
// group that still has processes is (EBUSY).
func (t *Tree) Remove(rel string) error {
	if rel == "" || rel == "." {
		return fmt.Errorf("remove cgroup: refusing to remove the tree's root")
	}
	var dirs []string
	filepath.WalkDir(t.Path(rel), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.Rmdir(dirs[i]); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
		}
	}
	delete(t.enabled, t.Path(rel))
	return nil
}

// Chown gives group rel to a user, for a delegated unit that runs as
// one: the directory and the files a delegate needs to manage it.
func (t *Tree) Chown(rel string, uid, gid int) error {
	dir := t.Path(rel)
	for _, p := range []string{dir, filepath.Join(dir, "cgroup.procs"), filepath.Join(dir, "cgroup.subtree_control"), filepath.Join(dir, "cgroup.threads")} {
		if err := os.Chown(p, uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delegate cgroup %s: %w", rel, err)
		}
	}
	return nil
}

// Stats is a group's accounting; a nil field is one the kernel does not
// provide for the group (its controller is not enabled).
type Stats struct {
	MemoryCurrent *uint64
	MemoryPeak    *uint64
	TasksCurrent  *uint64
	CPUUsageNSec  *uint64
	IOReadBytes   *uint64
	IOWriteBytes  *uint64
}

// Stats reads group rel's accounting.
func (t *Tree) Stats(rel string) Stats {
	var s Stats
	one := func(file string) *uint64 {
		data, err := t.Read(rel, file)
		if err != nil {
			return nil
		}
		if n, ok := parseUintOrMax(data); ok {
			return &n
		}
		return nil
	}
	s.MemoryCurrent = one("memory.current")
	s.MemoryPeak = one("memory.peak")
	s.TasksCurrent = one("pids.current")
	if data, err := t.Read(rel, "cpu.stat"); err == nil {
		if us, ok := ParseKeyed(data)["usage_usec"]; ok {
			ns := us * 1000
			s.CPUUsageNSec = &ns
		}
	}
	if data, err := t.Read(rel, "io.stat"); err == nil {
		r, w := ParseIOStat(data)
		s.IOReadBytes, s.IOWriteBytes = &r, &w
	}
	return s
}

// OOMKills is the oom_kill count of group rel's memory.events (0 without
// the memory controller).
func (t *Tree) OOMKills(rel string) uint64 {
	data, err := t.Read(rel, "memory.events")
	if err != nil {
		return 0
	}
	return ParseKeyed(data)["oom_kill"]
}

// ParseIOStat sums rbytes and wbytes over the devices of an io.stat file
// ("8:0 rbytes=1 wbytes=2 rios=3 ...").
func ParseIOStat(data string) (read, written uint64) {
	for _, line := range strings.Split(data, "\n") {
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				read += n
			case "wbytes":
				written += n
			}
		}
	}
	return read, written
}
