package units

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"vigil/observer"
	"vigil/observer/cgroupevents"
	"vigil/units/cgroup"
	"vigil/units/exec"
	"vigil/units/procfs"
	"vigil/units/unitfile"
)

// Spawner starts a process described by a Spec. The default is exec.Start;
// tests and PID 1 may wrap it.
type Spawner interface {
	Spawn(spec *exec.Spec) (*exec.Started, error)
}

type defaultSpawner struct{}

func (defaultSpawner) Spawn(spec *exec.Spec) (*exec.Started, error) { return exec.Start(spec) }

// OutputCapturer takes a unit's stdout/stderr pipes (optional on LogSink).
type OutputCapturer interface {
	Capture(unit string, pid int, stream string, r *os.File, echo bool)
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execSpec turns a unit's exec settings and one command into a Spec.
func (m *Manager) execSpec(u *Unit, ec *unitfile.ExecContext, cmd unitfile.Command, mainPID int) (*exec.Spec, error) {
	spec := &exec.Spec{
		Path:          cmd.Path,
		Argv:          cmd.Argv,
		ExpandArgv:    !cmd.NoEnvExpand,
		RootDirectory: ec.RootDirectory,
		Setsid:        true,
		TTYPath:       ec.TTYPath,
	}
	env := []string{"PATH=" + defaultPath}
	env = append(env, m.opts.Environment...)
	if ec.User != "" && !cmd.FullPrivileges {
		uid, gid, home, shell, err := exec.LookupUser(ec.User)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", ec.User, err)
		}
		cred := &exec.Credential{UID: uid, GID: gid}
		if groups, err := exec.MemberGroups(ec.User); err == nil {
			cred.SupplementaryGroups = groups
		}
		if ec.Group != "" {
			g, err := exec.LookupGroup(ec.Group)
			if err != nil {
				return nil, fmt.Errorf("group %s: %w", ec.Group, err)
			}
			cred.GID = g
		}
		for _, name := range ec.SupplementaryGroups {
			g, err := exec.LookupGroup(name)
			if err != nil {
				return nil, fmt.Errorf("supplementary group %s: %w", name, err)
			}
			cred.SupplementaryGroups = append(cred.SupplementaryGroups, g)
		}
		spec.Credential = cred
		env = append(env, "USER="+ec.User, "LOGNAME="+ec.User, "HOME="+home, "SHELL="+shell)
		if ec.WorkingDirectory.Home {
			spec.Dir = home
		}
	} else if ec.Group != "" && !cmd.FullPrivileges {
		g, err := exec.LookupGroup(ec.Group)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", ec.Group, err)
		}
		spec.Credential = &exec.Credential{UID: 0, GID: g}
	}
	if ec.WorkingDirectory.Path != "" {
		spec.Dir = ec.WorkingDirectory.Path
		if ec.WorkingDirectory.Optional {
			if _, err := os.Stat(filepath.Join(ec.RootDirectory, spec.Dir)); err != nil {
				spec.Dir = ""
			}
		}
	} else if ec.WorkingDirectory.Home && spec.Dir == "" {
		spec.Dir = "/root"
	}
	env = append(env, ec.Environment...)
	for _, f := range ec.EnvironmentFiles {
		vars, err := readEnvironmentFile(f.Path)
		if err != nil {
			if f.Optional && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("environment file: %w", err)
		}
		env = append(env, vars...)
	}
	for _, name := range ec.PassEnvironment {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	if mainPID > 0 {
		env = append(env, "MAINPID="+strconv.Itoa(mainPID))
	}
	dirEnv, err := m.setupExecDirectories(ec)
	if err != nil {
		return nil, err
	}
	env = append(env, dirEnv...)
	spec.Env = dedupEnv(env)
	if ec.UMask != 0o022 {
		mask := uint32(ec.UMask)
		spec.Umask = &mask
	}
	spec.Nice = ec.Nice
	if len(ec.Limits) > 0 {
		spec.Rlimits = map[int]exec.Rlimit{}
		for name, l := range ec.Limits {
			res, ok := unitfile.RlimitResource(name)
			if !ok {
				return nil, fmt.Errorf("limit %s: unknown resource", name)
			}
			spec.Rlimits[res] = exec.Rlimit{Cur: l.Soft, Max: l.Hard}
		}
	}
	if !cmd.FullPrivileges {
		spec.NoNewPrivileges = ec.NoNewPrivileges
		if caps, err := capabilityList(ec.AmbientCapabilities); err != nil {
			return nil, err
		} else if len(caps) > 0 {
			spec.AmbientCapabilities = caps
		}
		if len(ec.CapabilityBoundingSet.Names) > 0 || ec.CapabilityBoundingSet.Invert {
			caps, err := boundingSet(ec.CapabilityBoundingSet)
			if err != nil {
				return nil, err
			}
			spec.CapabilityBoundingSet = caps
		}
	}
	if spec.Stdin, err = stdioOf(ec.StandardInput, true); err != nil {
		return nil, err
	}
	if spec.Stdout, err = stdioOf(ec.StandardOutput, false); err != nil {
		return nil, err
	}
	if ec.StandardOutput.Kind == unitfile.StdIOInherit {
		spec.Stdout = exec.Inherit()
		// A terminal or a connection on stdin is a two-way stream:
		// output goes back to it, as systemd does.
		if spec.Stdin.Kind == exec.StdioTTY || spec.Stdin.Kind == exec.StdioFD {
			spec.Stdout = spec.Stdin
		}
	}
	if ec.StandardError.Kind == unitfile.StdIOInherit {
		spec.Stderr = exec.SameAsStdout()
	} else if spec.Stderr, err = stdioOf(ec.StandardError, false); err != nil {
		return nil, err
	}
	return spec, nil
}

func stdioOf(s unitfile.StdIO, input bool) (exec.Stdio, error) {
	switch s.Kind {
	case unitfile.StdIONull, "":
		return exec.Null(), nil
	case unitfile.StdIOTTY, unitfile.StdIOTTYForce, unitfile.StdIOTTYFail:
		return exec.TTY(""), nil
	case unitfile.StdIOInherit:
		return exec.Inherit(), nil
	case unitfile.StdIOLog, unitfile.StdIOLogConsole:
		if input {
			return exec.Null(), nil
		}
		return exec.Pipe(), nil
	case unitfile.StdIOFile:
		return exec.File(s.Path, exec.FileOverwrite), nil
	case unitfile.StdIOAppend:
		return exec.File(s.Path, exec.FileAppend), nil
	case unitfile.StdIOSocket:
		// The connection of an accept = true socket: only the service
		// knows it (see service.activationSpec).
		return exec.FD(stdioSocketFD), nil
	}
	if strings.HasPrefix(string(s.Kind), "truncate") {
		return exec.File(s.Path, exec.FileTruncate), nil
	}
	return exec.Stdio{}, fmt.Errorf("standard stream %s is not supported yet", s)
}

func capabilityList(c unitfile.Capabilities) ([]int, error) {
	var out []int
	for _, name := range c.Names {
		n, err := exec.ParseCapability(name)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func boundingSet(c unitfile.Capabilities) ([]int, error) {
	listed, err := capabilityList(c)
	if err != nil {
		return nil, err
	}
	if !c.Invert {
		if listed == nil {
			listed = []int{}
		}
		return listed, nil
	}
	drop := map[int]bool{}
	for _, n := range listed {
		drop[n] = true
	}
	out := []int{}
	for n := 0; n < 64; n++ {
		if exec.CapabilityName(n) == "" {
			break
		}
		if !drop[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// dedupEnv keeps the last assignment of each variable, in first-seen order.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// readEnvironmentFile reads KEY=VALUE lines as systemd does: comments with
// # or ;, optional quotes, "export " tolerated.
func readEnvironmentFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out, sc.Err()
}

// captureOutput hands a started process's pipes to the log store.
func (m *Manager) captureOutput(u *Unit, st *exec.Started) {
	c, ok := m.opts.Logs.(OutputCapturer)
	echo := false
	if u.cfg != nil {
		if ec := u.execContext(); ec != nil {
			echo = ec.StandardOutput.Kind == unitfile.StdIOLogConsole
		}
	}
	for _, p := range []struct {
		f      *os.File
		stream string
	}{{st.Stdout, "stdout"}, {st.Stderr, "stderr"}} {
		if p.f == nil {
			continue
		}
		if !ok {
			// Closing the pipe would kill the process's next write with
			// SIGPIPE (a TERM handler saying goodbye, say): drain it.
			go func(f *os.File) {
				io.Copy(io.Discard, f)
				f.Close()
			}(p.f)
			continue
		}
		c.Capture(u.Name, st.PID, p.stream, p.f, echo)
	}
}

// sessionMembers lists live processes whose session is one of sessions.
func (m *Manager) sessionMembers(sessions map[int]bool) []int {
	if len(sessions) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sid, state, ok := procSession(pid)
		if ok && sessions[sid] && state != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// procSession reads the session ID and state from /proc/PID/stat.
func procSession(pid int) (sid int, state byte, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	st, err := procfs.ParseStat(data)
	if err != nil {
		return 0, 0, false
	}
	return st.Session, st.State, true
}

// procCommand is a process's command line for listings.
func procCommand(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	return procfs.Cmdline(data)
}

// setupCgroups decides whether units get cgroups: the tree given in the
// options, else the whole hierarchy when the manager is PID 1. A PID 1
// without a usable cgroup2 hierarchy boots anyway, with one warning.
func (m *Manager) setupCgroups() error {
	tree := m.opts.Cgroups
	if tree == nil && !m.opts.NoCgroups && os.Getpid() == 1 {
		t, err := cgroup.ForPID1()
		if err != nil {
			m.consoleLine(consoleWarn, "Running without cgroups: %v", err)
			m.warnf("running without cgroups: %v", err)
			return nil
		}
		tree = t
	}
	if tree == nil || m.opts.NoCgroups {
		return nil
	}
	w, err := cgroupevents.Start(m.loop)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	m.cgroups = tree
	m.cgroupEvents = w
	m.machine = cgroup.ReadMachine()
	if !tree.HasKill() {
		m.warnf("cgroup.kill is missing (kernel before 5.14): stopping units signals their processes one by one")
	}
	return nil
}

// Cgroups is the tree units are placed in, nil without cgroups.
func (m *Manager) Cgroups() *cgroup.Tree { return m.cgroups }

// resources is a unit's [resources] section, never nil.
func (u *Unit) resources() *unitfile.ResourcesSection {
	if u.cfg != nil && u.cfg.Resources != nil {
		return u.cfg.Resources
	}
	return &unitfile.ResourcesSection{}
}

// slice is the slice u's cgroup sits in: the one it names, or the
// default for its name.
func (u *Unit) slice() string {
	if slice := u.resources().Slice; slice != "" {
		return slice
	}
	return unitfile.DefaultSlice(u.Name)
}

// cgroupPath is where u's cgroup goes, relative to the tree.
func (m *Manager) cgroupPath(u *Unit) (string, error) {
	return cgroup.UnitPath(u.Name, u.slice())
}

// applyCgroup creates u's cgroup at rel, with the slices above it, and
// writes the resource settings of the slices (from their unit files, if
// any) and of u. What the kernel cannot do comes back as warnings.
func (m *Manager) applyCgroup(u *Unit, rel string) ([]string, error) {
	var warnings []string
	slice := u.slice()
	if slice != cgroup.RootSlice && !strings.HasSuffix(u.Name, ".slice") {
		for _, sl := range append(cgroup.ParentSlices(slice), slice) {
			dir, err := cgroup.SlicePath(sl)
			if err != nil {
				return warnings, err
			}
			su := m.units[sl]
			if su != nil {
				if sb, ok := su.behaviour.(*sliceUnit); ok && sb.realized == dir {
					continue // made, with its limits, when the slice started
				}
			}
			if su == nil || su.cfg == nil || su.cfg.Resources == nil {
				if err := m.cgroups.Ensure(dir); err != nil {
					return warnings, err
				}
				continue
			}
			w, err := m.applyResources(su, dir)
			if err != nil {
				return warnings, err
			}
			for _, x := range w {
				warnings = append(warnings, sl+": "+x)
			}
		}
	}
	w, err := m.applyResources(u, rel)
	return append(warnings, w...), err
}

func (m *Manager) applyResources(u *Unit, rel string) ([]string, error) {
	res := u.resources()
	settings, warnings := cgroup.Settings(res, m.machine)
	w, err := m.cgroups.Apply(rel, settings, res.Delegate)
	warnings = append(warnings, w...)
	if err == nil && res.Delegate.Enabled {
		if ec := u.execContext(); ec != nil && ec.User != "" {
			if uid, gid, _, _, lerr := exec.LookupUser(ec.User); lerr == nil {
				if cerr := m.cgroups.Chown(rel, int(uid), int(gid)); cerr != nil {
					warnings = append(warnings, cerr.Error())
				}
			}
		}
	}
	return warnings, err
}

// cgroupListener is a behaviour that wants its cgroup's events.
type cgroupListener interface {
	cgroupEvent(ev *observer.Event)
}

func (m *Manager) onCgroupEvent(ev *observer.Event) {
	u := m.units[ev.Attr("unit")]
	if u == nil {
		return
	}
	if l, ok := u.behaviour.(cgroupListener); ok {
		l.cgroupEvent(ev)
	}
}

// commandCgroup makes the group of a unit whose commands are its only
// processes (a socket's exec-start-pre and friends), in its slice with
// its limits, and returns it; "" without cgroups or when it cannot be
// made (said in the unit's log: the command then runs outside it).
func (m *Manager) commandCgroup(u *Unit) string {
	if m.cgroups == nil {
		return ""
	}
	rel, err := m.cgroupPath(u)
	if err == nil {
		var warnings []string
		warnings, err = m.applyCgroup(u, rel)
		for _, w := range warnings {
			u.warnf("Warning: %s", w)
		}
	}
	if err != nil {
		u.warnf("Could not make the unit's cgroup (%v); running the command outside it.", err)
		return ""
	}
	return rel
}

// releaseCommandCgroup removes commandCgroup's group once it is empty.
func (m *Manager) releaseCommandCgroup(u *Unit) {
	if m.cgroups == nil {
		return
	}
	rel, err := m.cgroupPath(u)
	if err != nil {
		return
	}
	m.releaseUnitCgroup(u, rel)
}

// spawnInCgroup starts spec inside the group rel: born there through
// clone3 when the kernel can, else moved there right after the fork (and
// said so in the unit's log, since a child forked in between escapes).
func (m *Manager) spawnInCgroup(u *Unit, spec *exec.Spec, rel string) (*exec.Started, error) {
	if rel == "" || m.cgroups == nil {
		return m.opts.Spawner.Spawn(spec)
	}
	fd, err := m.cgroups.OpenFD(rel)
	if err != nil {
		return nil, err
	}
	spec.CgroupFD = fd
	started, err := m.opts.Spawner.Spawn(spec)
	spec.CgroupFD = 0
	syscall.Close(fd)
	var ee *exec.ExecError
	if err == nil || !errors.As(err, &ee) || ee.Step != exec.StepCgroup {
		return started, err
	}
	u.warnf("Could not start the process inside its cgroup (%v); starting it outside and moving it in.", err)
	started, err = m.opts.Spawner.Spawn(spec)
	if err != nil {
		return nil, err
	}
	if err := m.cgroups.Move(rel, started.PID); err != nil {
		u.warnf("Could not move process %d into cgroup %s: %v", started.PID, rel, err)
	}
	return started, nil
}
