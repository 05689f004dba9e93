package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/unitfile"
)

// Setting is one value for one control file.
type Setting struct {
	Controller string // memory, cpu, cpuset, io, pids
	File       string // memory.max
	Value      string
	// Default marks a value written only to return a file to the kernel's
	// default after its key was removed: it is skipped quietly where the
	// controller is not enabled.
	Default bool
}

// Machine is what relative limits are relative to, and how devices are
// named.
type Machine struct {
	// MemTotal is the RAM in bytes, for memory percentages.
	MemTotal uint64
	// TasksLimit is the system's task limit, for tasks-max percentages.
	TasksLimit uint64
	// Device resolves a path (a device node or a file) to "MAJ:MIN" of
	// its whole disk; nil uses DeviceNumber.
	Device func(path string) (string, error)
}

// ReadMachine reads the machine's totals from /proc.
func ReadMachine() Machine {
	m := Machine{}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
						m.MemTotal = kb * 1024
					}
				}
			}
		}
	}
	m.TasksLimit = math.MaxUint64
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		if data, err := os.ReadFile(f); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err == nil && n < m.TasksLimit {
				m.TasksLimit = n
			}
		}
	}
	if m.TasksLimit == math.MaxUint64 {
		m.TasksLimit = 4194304
	}
	return m
}

// DeviceNumber is "MAJ:MIN" of the disk a path is on, as io.max wants
// it: the device itself for a block device node, else the file system's
// device, a partition mapped to its whole disk.
func DeviceNumber(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	dev := st.Dev
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		dev = st.Rdev
	}
	num := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	sys := "/sys/dev/block/" + num
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		if data, err := os.ReadFile(filepath.Join(sys, "..", "dev")); err == nil {
			return strings.TrimSpace(string(data)), nil
		}
	}
	return num, nil
}

func sizeValue(s *unitfile.Size, total uint64) string {
	switch {
	case s.Infinity:
		return "max"
	case s.Percent > 0:
		return strconv.FormatUint(uint64(float64(total)*s.Percent/100), 10)
	}
	return strconv.FormatUint(s.Bytes, 10)
}

// Settings turns a [resources] section into control file values, with
// defaults for what it leaves unset so that removing a key at reload
// undoes it. Problems (a device that cannot be resolved) come back as
// warnings; the rest still applies.
func Settings(r *unitfile.ResourcesSection, m Machine) (out []Setting, warnings []string) {
	if r == nil {
		r = &unitfile.ResourcesSection{}
	}
	add := func(ctrl, file, value string) {
		out = append(out, Setting{Controller: ctrl, File: file, Value: value})
	}
	def := func(ctrl, file, value string) {
		out = append(out, Setting{Controller: ctrl, File: file, Value: value, Default: true})
	}
	for _, mem := range []struct {
		file string
		v    *unitfile.Size
		dflt string
	}{
		{"memory.min", r.MemoryMin, "0"},
		{"memory.low", r.MemoryLow, "0"},
		{"memory.high", r.MemoryHigh, "max"},
		{"memory.max", r.MemoryMax, "max"},
		{"memory.swap.max", r.MemorySwapMax, "max"},
	} {
		if mem.v != nil {
			add("memory", mem.file, sizeValue(mem.v, m.MemTotal))
		} else {
			def("memory", mem.file, mem.dflt)
		}
	}
	if r.CPUWeight != nil {
		add("cpu", "cpu.weight", strconv.Itoa(*r.CPUWeight))
	} else {
		def("cpu", "cpu.weight", "100")
	}
	period := r.CPUQuotaPeriod
	if period <= 0 || period == unitfile.Infinity {
		period = 100 * time.Millisecond
	}
	periodUS := uint64(period / time.Microsecond)
	periodUS = max(1000, min(periodUS, 1000000)) // the kernel's bounds
	if r.CPUQuota != nil {
		quota := uint64(float64(*r.CPUQuota) / 100 * float64(periodUS))
		add("cpu", "cpu.max", fmt.Sprintf("%d %d", max(quota, 1000), periodUS))
	} else if r.CPUQuotaPeriod > 0 && r.CPUQuotaPeriod != 100*time.Millisecond {
		add("cpu", "cpu.max", fmt.Sprintf("max %d", periodUS))
	} else {
		def("cpu", "cpu.max", "max 100000")
	}
	if r.AllowedCPUs != "" {
		add("cpuset", "cpuset.cpus", normalizeCPUSet(r.AllowedCPUs))
	}
	if r.AllowedMemoryNodes != "" {
		add("cpuset", "cpuset.mems", normalizeCPUSet(r.AllowedMemoryNodes))
	}
	device := m.Device
	if device == nil {
		device = DeviceNumber
	}
	if r.IOWeight != nil {
		add("io", "io.weight", "default "+strconv.Itoa(*r.IOWeight))
	} else {
		def("io", "io.weight", "default 100")
	}
	for _, dl := range r.IODeviceWeight {
		num, err := device(dl.Device)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("io-device-weight %s: %v", dl.Device, err))
			continue
		}
		add("io", "io.weight", num+" "+strconv.FormatUint(dl.Value.Bytes, 10))
	}
	// io.max takes one line per device with any of its four limits.
	limits := map[string][]string{}
	for _, l := range []struct {
		key, field string
		list       unitfile.DeviceLimits
	}{
		{"io-read-bandwidth-max", "rbps", r.IOReadBandwidthMax},
		{"io-write-bandwidth-max", "wbps", r.IOWriteBandwidthMax},
		{"io-read-iops-max", "riops", r.IOReadIOPSMax},
		{"io-write-iops-max", "wiops", r.IOWriteIOPSMax},
	} {
		for _, dl := range l.list {
			num, err := device(dl.Device)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("%s %s: %v", l.key, dl.Device, err))
				continue
			}
			limits[num] = append(limits[num], l.field+"="+sizeValue(&dl.Value, m.MemTotal))
		}
	}
	devs := make([]string, 0, len(limits))
	for d := range limits {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, d := range devs {
		add("io", "io.max", d+" "+strings.Join(limits[d], " "))
	}
	switch t := r.TasksMax; {
	case t == nil || t.Infinity:
		if t == nil {
			def("pids", "pids.max", "max")
		} else {
			add("pids", "pids.max", "max")
		}
	case t.Percent > 0:
		add("pids", "pids.max", strconv.FormatUint(max(1, uint64(float64(m.TasksLimit)*t.Percent/100)), 10))
	default:
		add("pids", "pids.max", strconv.FormatUint(t.Count, 10))
	}
	return out, warnings
}

// normalizeCPUSet writes a list such as "0-3 5" the kernel's way, "0-3,5".
func normalizeCPUSet(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }), ",")
}

// Controllers lists the controllers a unit's settings and delegation
// need, accounting ones (memory, pids) always, in a fixed order.
func Controllers(settings []Setting, delegate unitfile.Delegate) []string {
	need := map[string]bool{"memory": true, "pids": true}
	for _, s := range settings {
		if !s.Default {
			need[s.Controller] = true
		}
	}
	if delegate.Enabled {
		if len(delegate.Controllers) == 0 {
			for _, c := range []string{"cpu", "cpuset", "io", "memory", "pids"} {
				need[c] = true
			}
		}
		for _, c := range delegate.Controllers {
			switch c {
			case "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc":
				need[c] = true
			case "cpuacct":
				need["cpu"] = true
			case "blkio":
				need["io"] = true
			}
		}
	}
	var out []string
	for _, c := range []string{"cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc"} {
		if need[c] {
			out = append(out, c)
		}
	}
	return out
}

// Apply realises group rel with settings: the group exists afterwards,
// the controllers it needs are enabled above it where the kernel has
// them, and every setting whose controller is there is written. A
// controller the kernel lacks is a warning naming the keys it would
// have served; only a failure to create the group is an error.
func (t *Tree) Apply(rel string, settings []Setting, delegate unitfile.Delegate) (warnings []string, err error) {
	if err := t.Ensure(rel); err != nil {
		return nil, err
	}
	missing, err := t.EnableControllers(rel, Controllers(settings, delegate))
	if err != nil {
		warnings = append(warnings, err.Error())
	}
	lacking := map[string]bool{}
	for _, c := range missing {
		lacking[c] = true
	}
	var unserved []string
	names := map[string]bool{}
	for _, s := range settings {
		if lacking[s.Controller] || !t.available[s.Controller] {
			if !s.Default {
				unserved = append(unserved, s.File+"="+s.Value)
				names[s.Controller] = true
			}
			continue
		}
		if err := t.Write(rel, s.File, s.Value); err != nil {
			if s.Default && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if !s.Default {
				warnings = append(warnings, err.Error())
			}
		}
	}
	if len(unserved) > 0 {
		list := make([]string, 0, len(names))
		for c := range names {
			list = append(list, c)
		}
		sort.Strings(list)
		warnings = append(warnings, fmt.Sprintf("the kernel does not provide the cgroup controller(s) %s here: not applied: %s",
			strings.Join(list, ", "), strings.Join(unserved, " ")))
	}
	return warnings, nil
}
