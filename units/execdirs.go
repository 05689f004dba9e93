package units

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"vigil/units/api"
	"vigil/units/exec"
	"vigil/units/unitfile"
)

// A unit's own directories (systemd's RuntimeDirectory=, StateDirectory=,
// CacheDirectory=, LogsDirectory=, ConfigurationDirectory=): each is a
// relative path below its root (/run, /var/lib, /var/cache, /var/log,
// /etc). Before every process of the unit starts, the manager makes them
// (parents 0755 and root's, the directory itself with its mode and, but
// for configuration, owned by the unit's user) and passes their absolute
// paths, joined with ':', in $RUNTIME_DIRECTORY, $STATE_DIRECTORY, ...
// The runtime ones go whenever the unit goes dead, as systemd's
// unit_destroy_runtime_data has it: with runtime-directory-preserve = "no"
// always, also before an automatic restart (the next run starts with an
// empty directory); with "restart" unless the unit will start again (a
// restart job, or an automatic restart); with "yes" never. That removal is
// synchronous, on the loop, so that a start right after cannot lose its
// fresh directory to it (they live in /run, a tmpfs). The others stay
// until `systemctl clean` (clean.go).

// ExecDirectoryRoots are the roots of the units' own directories; an
// empty field means systemd's.
type ExecDirectoryRoots struct {
	Runtime, State, Cache, Logs, Configuration string
}

// execDirKind is one kind of a unit's directories, in systemd's order
// (ExecDirectoryType), which CanClean lists follow.
type execDirKind int

const (
	execDirRuntime execDirKind = iota
	execDirState
	execDirCache
	execDirLogs
	execDirConfiguration
	numExecDirKinds
)

// Name is systemd's resource name for the kind, as `systemctl clean
// --what=` and CanClean spell it.
func (k execDirKind) Name() string {
	return [...]string{"runtime", "state", "cache", "logs", "configuration"}[k]
}

// envName is the variable that passes the kind's paths to the unit.
func (k execDirKind) envName() string {
	return [...]string{"RUNTIME_DIRECTORY", "STATE_DIRECTORY", "CACHE_DIRECTORY", "LOGS_DIRECTORY", "CONFIGURATION_DIRECTORY"}[k]
}

// root is where the kind's directories go.
func (r ExecDirectoryRoots) root(k execDirKind) string {
	set := [...]string{r.Runtime, r.State, r.Cache, r.Logs, r.Configuration}[k]
	if set != "" {
		return set
	}
	return [...]string{"/run", "/var/lib", "/var/cache", "/var/log", "/etc"}[k]
}

// execDirs gives the configured directories of one kind and their mode.
func execDirs(ec *unitfile.ExecContext, k execDirKind) ([]string, os.FileMode) {
	switch k {
	case execDirRuntime:
		return ec.RuntimeDirectory, os.FileMode(ec.RuntimeDirectoryMode)
	case execDirState:
		return ec.StateDirectory, os.FileMode(ec.StateDirectoryMode)
	case execDirCache:
		return ec.CacheDirectory, os.FileMode(ec.CacheDirectoryMode)
	case execDirLogs:
		return ec.LogsDirectory, os.FileMode(ec.LogsDirectoryMode)
	case execDirConfiguration:
		return ec.ConfigurationDirectory, os.FileMode(ec.ConfigurationDirectoryMode)
	}
	return nil, 0
}

// execDirPaths are the absolute paths of a unit's directories of the
// kinds in mask (bit 1<<kind).
func (m *Manager) execDirPaths(ec *unitfile.ExecContext, mask uint) []string {
	var out []string
	for k := execDirKind(0); k < numExecDirKinds; k++ {
		if mask&(1<<k) == 0 {
			continue
		}
		dirs, _ := execDirs(ec, k)
		for _, d := range dirs {
			out = append(out, filepath.Join(m.opts.ExecDirectoryRoots.root(k), d))
		}
	}
	return out
}

// hasExecDirectories reports whether ec names any directory of its own.
func hasExecDirectories(ec *unitfile.ExecContext) bool {
	return len(ec.RuntimeDirectory)+len(ec.StateDirectory)+len(ec.CacheDirectory)+
		len(ec.LogsDirectory)+len(ec.ConfigurationDirectory) > 0
}

// execDirOwner is who owns the unit's directories: its user and group
// (whatever a command's '+' prefix says), nil for root.
func execDirOwner(ec *unitfile.ExecContext) (*exec.Credential, error) {
	if ec.User == "" && ec.Group == "" {
		return nil, nil
	}
	cred := &exec.Credential{}
	if ec.User != "" {
		uid, gid, _, _, err := exec.LookupUser(ec.User)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", ec.User, err)
		}
		cred.UID, cred.GID = uid, gid
	}
	if ec.Group != "" {
		g, err := exec.LookupGroup(ec.Group)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", ec.Group, err)
		}
		cred.GID = g
	}
	return cred, nil
}

// setupExecDirectories makes a unit's directories and returns the
// variables that name them; nothing for a unit without any.
func (m *Manager) setupExecDirectories(ec *unitfile.ExecContext) ([]string, error) {
	if !hasExecDirectories(ec) {
		return nil, nil
	}
	cred, err := execDirOwner(ec)
	if err != nil {
		return nil, err
	}
	var env []string
	for k := execDirKind(0); k < numExecDirKinds; k++ {
		dirs, mode := execDirs(ec, k)
		if len(dirs) == 0 {
			continue
		}
		root := m.opts.ExecDirectoryRoots.root(k)
		paths := make([]string, 0, len(dirs))
		for _, d := range dirs {
			p := filepath.Join(root, d)
			owner := cred
			if k == execDirConfiguration {
				owner = nil // configuration stays root's, as systemd keeps it
			}
			if err := makeExecDirectory(p, mode, owner); err != nil {
				return nil, fmt.Errorf("%s-directory %s: %w", k.Name(), d, err)
			}
			paths = append(paths, p)
		}
		env = append(env, k.envName()+"="+strings.Join(paths, ":"))
	}
	return env, nil
}

// makeExecDirectory makes p with mode, its missing parents
// 0755, and gives p and, when its owner changes, everything in it to
// owner. A symlink where p should be is refused: it could lead the chown
// anywhere.
func makeExecDirectory(p string, mode os.FileMode, owner *exec.Credential) error {
	// Usually it is there already (every start but the first): one lstat.
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		fi, err = os.Lstat(p)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", p)
	}
	if fi.Mode().Perm() != mode.Perm() || fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	uid, gid := 0, 0
	if owner != nil {
		uid, gid = int(owner.UID), int(owner.GID)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Uid) == uid && int(st.Gid) == gid) {
		return nil
	}
	// The owner changed (a new user=): hand over what is inside too, as
	// systemd does, without following symlinks.
	return filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// removeRuntimeDirectories removes u's runtime directories when it goes
// dead, unless runtime-directory-preserve keeps them; willRestart says
// that the unit goes into an automatic restart.
func (m *Manager) removeRuntimeDirectories(u *Unit, willRestart bool) {
	ec := u.execContext()
	if ec == nil || len(ec.RuntimeDirectory) == 0 {
		return
	}
	switch ec.RuntimeDirectoryPreserve {
	case "yes":
		return
	case "restart":
		if willRestart {
			return
		}
		if j := u.job; j != nil && (j.Type == api.JobRestart || j.Type == api.JobTryRestart || j.Type == api.JobReloadOrRestart) {
			return
		}
	}
	for _, p := range m.execDirPaths(ec, 1<<execDirRuntime) {
		if err := os.RemoveAll(p); err != nil {
			u.warnf("Could not remove runtime directory %s: %v", p, err)
		}
	}
}

// unitWentDown is told (by unitChanged) that u became inactive or failed:
// its runtime directories go, and a mount or swap lets go of its cgroup.
func (m *Manager) unitWentDown(u *Unit) {
	m.removeRuntimeDirectories(u, false)
	if r, ok := u.behaviour.(interface{ releaseCgroupWhenDown() }); ok {
		r.releaseCgroupWhenDown()
	}
}
