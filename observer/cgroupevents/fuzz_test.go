package cgroupevents

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzKeyed reads arbitrary cgroup.events and memory.events contents: no
// panic, and a count it reports is the number on the key's own line.
func FuzzKeyed(f *testing.F) {
	for _, s := range []string{
		"populated 1\nfrozen 0\n",
		"low 0\nhigh 0\nmax 3\noom 2\noom_kill 18446744073709551615\noom_group_kill 0\n",
		"oom_kill 1 2\n", "oom_kill  7", "oom_kill\n", " populated 1", "populated -1\npopulated 2\n", "\x00 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, key := range []string{"populated", "oom_kill"} {
			n := keyed(data, key)
			if n == 0 {
				continue
			}
			found := false
			for _, line := range strings.Split(data, "\n") {
				if v, ok := strings.CutPrefix(line, key+" "); ok {
					got, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					found = err == nil && got == n
					break
				}
			}
			if !found {
				t.Fatalf("keyed(%q, %s) = %d, not the number on its first line", data, key, n)
			}
		}
	})
}
