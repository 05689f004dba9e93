package cgroup

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseKeyed reads a cgroup2 "flat keyed" file (cgroup.events,
// memory.events, cpu.stat, pids.events): one "KEY VALUE" per line with
// an unsigned number as value. Lines that do not fit are skipped, so a
// newer kernel's additions never break an older reader.
func ParseKeyed(data string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || k == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}

// parseUintOrMax reads a single-value file such as memory.current or
// pids.max; "max" is reported as ok=false.
func parseUintOrMax(data string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(data), 10, 64)
	return n, err == nil
}

// CgroupOfProc finds the cgroup2 path (the "0::" line) in the contents of
// /proc/PID/cgroup.
func CgroupOfProc(data string) (string, error) {
	for _, line := range strings.Split(data, "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			p := strings.TrimSpace(rest)
			if !strings.HasPrefix(p, "/") {
				return "", fmt.Errorf("cgroup2 path %q is not absolute", p)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup2 entry (0::) in the process's cgroup file")
}

// Cgroup2Mount finds the mount point of the cgroup2 hierarchy in the
// contents of /proc/self/mountinfo: /sys/fs/cgroup on a pure cgroup2
// system, /sys/fs/cgroup/unified on a hybrid one. The first mount whose
// root is the hierarchy's root wins.
func Cgroup2Mount(mountinfo string) (string, error) {
	for _, line := range strings.Split(mountinfo, "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf := strings.Fields(pre)
		sf := strings.Fields(post)
		if len(pf) < 5 || len(sf) < 1 || sf[0] != "cgroup2" || pf[3] != "/" {
			continue
		}
		return unescapeMount(pf[4]), nil
	}
	return "", fmt.Errorf("no cgroup2 file system is mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
