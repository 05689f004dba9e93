package notify

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseCgroupFile reads arbitrary /proc/PID/cgroup contents, which
// decide whether a notify sender belongs to a unit: no panic, and the path
// found is exactly the rest of the first "0::" line.
func FuzzParseCgroupFile(f *testing.F) {
	for _, s := range []string{
		"0::/vigil.slice/foo.service\n",
		"12:pids:/x\n1:name=systemd:/y\n0::/user.slice\n",
		"0::\n", "0::/a\n0::/b\n", "0:/x\n", "\n\n0::/a b\r\n", strings.Repeat("x", 70000) + "\n0::/late\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cg, ok := parseCgroupFile(data)
		if !ok {
			if cg != "" {
				t.Fatalf("no entry but path %q", cg)
			}
			return
		}
		if bytes.Contains([]byte(cg), []byte("\n")) {
			t.Fatalf("path %q spans lines", cg)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if rest, found := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "0::"); found {
				if rest != cg {
					t.Fatalf("path %q, but the first 0:: line says %q", cg, rest)
				}
				return
			}
		}
		t.Fatalf("path %q found in %q without a 0:: line", cg, data)
	})
}
