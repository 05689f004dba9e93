package early

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Names of "no virtualization" and of unidentified kinds, as systemd's
// detect-virt prints them.
const (
	VirtNone           = "none"
	VirtVMOther        = "vm-other"
	VirtContainerOther = "container-other"
)

// DetectContainer reports whether this process runs in a container and
// which kind, with systemd's names: from "container=" in PID 1's
// environment (our own when we are PID 1), /run/systemd/container,
// /run/.containerenv (podman), /.dockerenv (docker), WSL's kernel release,
// and finally a missing CAP_SYS_ADMIN ("container-other"). Otherwise it
// returns VirtNone, false.
func DetectContainer() (name string, inContainer bool) {
	var env []byte
	if os.Getpid() == 1 {
		if v, ok := os.LookupEnv("container"); ok {
			env = []byte("container=" + v)
		}
	} else {
		env, _ = os.ReadFile("/proc/1/environ")
	}
	return detectContainer("/", env, hasCapSysAdmin())
}

func detectContainer(root string, pid1Environ []byte, capSysAdmin bool) (string, bool) {
	for _, kv := range bytes.Split(pid1Environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("container=")); ok && len(v) > 0 {
			return containerName(string(v)), true
		}
	}
	if data, err := os.ReadFile(filepath.Join(root, "run/systemd/container")); err == nil {
		if v := strings.TrimSpace(string(data)); v != "" {
			return containerName(v), true
		}
	}
	if _, err := os.Stat(filepath.Join(root, "run/.containerenv")); err == nil {
		return "podman", true
	}
	if _, err := os.Stat(filepath.Join(root, ".dockerenv")); err == nil {
		return "docker", true
	}
	if data, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel/osrelease")); err == nil {
		if s := string(data); strings.Contains(s, "Microsoft") || strings.Contains(s, "WSL") {
			return "wsl", true
		}
	}
	if !capSysAdmin {
		return VirtContainerOther, true
	}
	return VirtNone, false
}

// containerName maps the values of container= to systemd's names.
func containerName(v string) string {
	switch v {
	case "oci":
		return "docker" // what runc and docker set
	case "lxc", "lxc-libvirt", "systemd-nspawn", "docker", "podman", "rkt", "wsl", "proot", "pouch":
		return v
	}
	return VirtContainerOther
}

// hasCapSysAdmin reports whether CAP_SYS_ADMIN is in our effective set.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return true // unknown: do not claim a container
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
}

// DetectVirtualization returns what systemd-detect-virt would print: the
// container kind when in a container, else the hypervisor (DetectVM), or
// VirtNone. The manager's ConditionVirtualization= uses it.
func DetectVirtualization() string {
	if name, in := DetectContainer(); in {
		return name
	}
	return DetectVM()
}

// DetectVM names the hypervisor the machine runs on, with systemd's
// names (kvm, qemu, vmware, microsoft, oracle, xen, bochs, parallels,
// bhyve, amazon, google, ...), VirtVMOther for an unknown one, or VirtNone.
// Like systemd it trusts DMI first for the vendors that hide behind
// another CPUID signature, then the CPUID hypervisor leaf, then the rest
// of DMI, Xen's sysfs, and the CPU's hypervisor flag.
func DetectVM() string {
	return detectVM("/", cpuidHypervisor)
}

func detectVM(root string, cpuidProbe func() (present bool, vendor string)) string {
	dmi := dmiVendor(root)
	switch dmi {
	case "oracle", "xen", "amazon", "parallels":
		return dmi
	}
	present, vendor := cpuidProbe()
	if name := cpuidVendorName(vendor); name != "" {
		return name
	}
	if dmi != "" {
		return dmi
	}
	if data, err := os.ReadFile(filepath.Join(root, "sys/hypervisor/type")); err == nil && strings.TrimSpace(string(data)) == "xen" {
		return "xen"
	}
	if data, err := os.ReadFile(filepath.Join(root, "proc/cpuinfo")); err == nil {
		if strings.Contains(string(data), "User Mode Linux") {
			return "uml"
		}
		if !present && hasCPUFlag(string(data), "hypervisor") {
			present = true
		}
	}
	if present {
		return VirtVMOther
	}
	return VirtNone
}

// dmiVendor matches the DMI strings against systemd's table.
func dmiVendor(root string) string {
	table := []struct{ prefix, name string }{
		{"KVM", "kvm"}, {"OpenStack", "kvm"}, {"KubeVirt", "kvm"},
		{"Amazon EC2", "amazon"}, {"QEMU", "qemu"},
		{"VMware", "vmware"}, {"VMW", "vmware"},
		{"innotek GmbH", "oracle"}, {"VirtualBox", "oracle"}, {"Oracle Corporation", "oracle"},
		{"Xen", "xen"}, {"Bochs", "bochs"}, {"Parallels", "parallels"},
		{"BHYVE", "bhyve"}, {"Hyper-V", "microsoft"}, {"Apple Virtualization", "apple"},
		{"Google Compute Engine", "google"},
	}
	for _, file := range []string{"product_name", "sys_vendor", "board_vendor", "bios_vendor", "product_version"} {
		data, err := os.ReadFile(filepath.Join(root, "sys/class/dmi/id", file))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(data))
		for _, e := range table {
			if strings.HasPrefix(s, e.prefix) {
				return e.name
			}
		}
	}
	return ""
}

// cpuidVendorName maps the hypervisor signature of CPUID leaf 0x40000000.
func cpuidVendorName(vendor string) string {
	switch strings.TrimRight(vendor, "\x00") {
	case "XenVMMXenVMM":
		return "xen"
	case "KVMKVMKVM", "Linux KVM Hv":
		return "kvm"
	case "TCGTCGTCGTCG":
		return "qemu"
	case "VMwareVMware":
		return "vmware"
	case "Microsoft Hv":
		return "microsoft"
	case "bhyve bhyve ":
		return "bhyve"
	case "QNXQVMBSQG":
		return "qnx"
	case "ACRNACRNACRN":
		return "acrn"
	case "SRESRESRESRE":
		return "sre"
	case "Apple VZ":
		return "apple"
	}
	return ""
}

// cpuidHypervisor reads the CPUID hypervisor bit (leaf 1, ECX bit 31) and
// the hypervisor's signature (leaf 0x40000000, EBX ECX EDX).
func cpuidHypervisor() (present bool, vendor string) {
	if !hasCPUID {
		return false, ""
	}
	_, _, ecx, _ := cpuid(1, 0)
	if ecx&(1<<31) == 0 {
		return false, ""
	}
	_, b, c, d := cpuid(0x40000000, 0)
	var sig [12]byte
	for i, r := range []uint32{b, c, d} {
		sig[4*i], sig[4*i+1], sig[4*i+2], sig[4*i+3] = byte(r), byte(r>>8), byte(r>>16), byte(r>>24)
	}
	return true, string(sig[:])
}

func hasCPUFlag(cpuinfo, flag string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "flags" {
			for _, f := range strings.Fields(value) {
				if f == flag {
					return true
				}
			}
			return false
		}
	}
	return false
}
