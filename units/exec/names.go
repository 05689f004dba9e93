package exec

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capabilityNames are the kernel's capability names, indexed by number.
var capabilityNames = [...]string{
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
	"setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
	"net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
	"sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
	"sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
	"setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
}

// ParseCapability turns "CAP_NET_BIND_SERVICE" (any case, prefix optional)
// or a number into a capability number.
func ParseCapability(name string) (int, error) {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.TrimPrefix(s, "cap_")
	for i, n := range capabilityNames {
		if n == s {
			return i, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 63 {
		return n, nil
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// CapabilityName is the kernel name of a capability, e.g. "CAP_NET_ADMIN".
func CapabilityName(c int) string {
	if c >= 0 && c < len(capabilityNames) {
		return "CAP_" + strings.ToUpper(capabilityNames[c])
	}
	return "CAP_" + strconv.Itoa(c)
}

// lastCapability is the highest capability the running kernel knows.
func lastCapability() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 64 {
			return n
		}
	}
	return len(capabilityNames) - 1
}

var rlimitNames = map[string]int{
	"cpu": unix.RLIMIT_CPU, "fsize": unix.RLIMIT_FSIZE, "data": unix.RLIMIT_DATA,
	"stack": unix.RLIMIT_STACK, "core": unix.RLIMIT_CORE, "rss": unix.RLIMIT_RSS,
	"nofile": unix.RLIMIT_NOFILE, "as": unix.RLIMIT_AS, "nproc": unix.RLIMIT_NPROC,
	"memlock": unix.RLIMIT_MEMLOCK, "locks": unix.RLIMIT_LOCKS,
	"sigpending": unix.RLIMIT_SIGPENDING, "msgqueue": unix.RLIMIT_MSGQUEUE,
	"nice": unix.RLIMIT_NICE, "rtprio": unix.RLIMIT_RTPRIO, "rttime": unix.RLIMIT_RTTIME,
}

// ParseRlimit turns systemd's limit names ("nofile", "LimitNOFILE", "NOFILE")
// into a resource number for Spec.Rlimits.
func ParseRlimit(name string) (int, error) {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.TrimPrefix(s, "limit")
	s = strings.TrimPrefix(s, "-")
	if r, ok := rlimitNames[s]; ok {
		return r, nil
	}
	return 0, fmt.Errorf("unknown resource limit %q", name)
}

// RlimitName is the lower-case name of a resource, e.g. "nofile".
func RlimitName(resource int) string {
	for n, r := range rlimitNames {
		if r == resource {
			return n
		}
	}
	return "resource" + strconv.Itoa(resource)
}
