package early

// cpuid executes the CPUID instruction (cpuid_amd64.s).
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// hasCPUID is true where cpuid is implemented.
const hasCPUID = true
