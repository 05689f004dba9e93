package units

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"vigil/units/procfs"
	"vigil/units/unitfile"
)

// checkConditions evaluates a unit's conditions (or asserts). Plain
// conditions must all hold; of the triggering ones ("|"), at least one.
// It returns the failed ones, readable.
func (m *Manager) checkConditions(u *Unit, asserts bool) (bool, []string) {
	if u.cfg == nil {
		return true, nil
	}
	conds := u.cfg.Unit.Conditions
	if asserts {
		conds = u.cfg.Unit.Asserts
	}
	var failed []string
	triggers, triggerOK := 0, false
	for _, c := range conds {
		ok := m.evalCondition(c)
		if c.Negate {
			ok = !ok
		}
		if c.Trigger {
			triggers++
			if ok {
				triggerOK = true
			} else {
				failed = append(failed, c.String()+" was not met")
			}
			continue
		}
		if !ok {
			return false, append([]string{c.String() + " was not met"}, failed...)
		}
	}
	if triggers > 0 && !triggerOK {
		return false, failed
	}
	return true, nil
}

func (m *Manager) evalCondition(c unitfile.Condition) bool {
	v := c.Value
	switch c.Kind {
	case "path-exists":
		_, err := os.Stat(v)
		return err == nil
	case "path-exists-glob":
		matches, _ := filepath.Glob(v)
		return len(matches) > 0
	case "path-is-directory":
		fi, err := os.Stat(v)
		return err == nil && fi.IsDir()
	case "path-is-symbolic-link":
		fi, err := os.Lstat(v)
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	case "path-is-mount-point":
		return isMountPoint(v)
	case "path-is-read-write":
		return !isReadOnly(v)
	case "directory-not-empty":
		entries, err := os.ReadDir(v)
		return err == nil && len(entries) > 0
	case "file-not-empty":
		fi, err := os.Stat(v)
		return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
	case "file-is-executable":
		fi, err := os.Stat(v)
		return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
	case "kernel-command-line":
		return kernelCmdlineHas(m.opts.KernelCommandLine, v)
	case "virtualization":
		return virtualizationMatches(m.opts.Virtualization, v)
	case "host":
		h, _ := os.Hostname()
		if id, err := os.ReadFile("/etc/machine-id"); err == nil && strings.TrimSpace(string(id)) == v {
			return true
		}
		ok, _ := filepath.Match(v, h)
		return ok
	case "architecture":
		return archMatches(v)
	case "environment":
		for _, kv := range append(os.Environ(), m.opts.Environment...) {
			if kv == v || (!strings.Contains(v, "=") && strings.HasPrefix(kv, v+"=")) {
				return true
			}
		}
		return false
	case "needs-update":
		return needsUpdate(v)
	case "first-boot":
		_, err := os.Stat("/etc/machine-id")
		first := err != nil
		return first == (v == "yes" || v == "true" || v == "1")
	case "ac-power":
		return true
	}
	// Kinds the loader accepts but Vigil cannot test yet: do not block the
	// start on them.
	return true
}

// kernelCmdlineHas tests "word" (flag or key) or "key=value".
func kernelCmdlineHas(cmdline, want string) bool {
	for _, w := range strings.Fields(cmdline) {
		if w == want {
			return true
		}
		if !strings.Contains(want, "=") {
			if k, _, ok := strings.Cut(w, "="); ok && k == want {
				return true
			}
		}
	}
	return false
}

// virtualizationMatches follows ConditionVirtualization=: yes/no, vm,
// container, or a technology name.
func virtualizationMatches(have, want string) bool {
	containers := map[string]bool{"docker": true, "lxc": true, "lxc-libvirt": true, "podman": true, "systemd-nspawn": true, "openvz": true, "wsl": true, "proot": true, "rkt": true, "container-other": true}
	virtual := have != "" && have != "none"
	switch want {
	case "yes", "true", "1":
		return virtual
	case "no", "false", "0":
		return !virtual
	case "container":
		return containers[have]
	case "vm":
		return virtual && !containers[have]
	}
	return have == want
}

func archMatches(want string) bool {
	names := map[string]string{"amd64": "x86-64", "arm64": "arm64", "386": "x86", "riscv64": "riscv64", "ppc64le": "ppc64-le", "s390x": "s390x"}
	a := names[runtime.GOARCH]
	return want == a || want == "native"
}

// needsUpdate is true when /usr is newer than the stamp file of dir
// (ConditionNeedsUpdate=/etc or /var).
func needsUpdate(dir string) bool {
	usr, err := os.Stat("/usr")
	if err != nil {
		return false
	}
	stamp, err := os.Stat(filepath.Join(dir, ".updated"))
	if err != nil {
		return true
	}
	return usr.ModTime().After(stamp.ModTime())
}

func isMountPoint(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return procfs.IsMountPoint(data, filepath.Clean(path))
}

func isReadOnly(path string) bool {
	f, err := os.CreateTemp(path, ".vigil-rw-")
	if err != nil {
		return true
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return false
}
