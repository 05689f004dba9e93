package units

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzMergeSetProperty feeds `initctl set-property` assignments (and an
// old drop-in) to mergeSetProperty: what it writes must be TOML the unit
// loader can read, with each assigned key once in [resources], and merging
// it again with nothing changes nothing.
func FuzzMergeSetProperty(f *testing.F) {
	for _, s := range [][2]string{
		{"", "memory-max=64M"},
		{"[resources]\nmemory-max = \"64M\"\ncpu-weight = 200\n", "cpu-weight="},
		{"", "cpu-weight=007"},
		{"", "io-read-bandwidth-max=/dev/vda 1M"},
		{"", "delegate=yes"},
		{"", "memory-max=\x01\a\v\xff"},
		{"# c\nmemory-max = = x\n", "tasks-max=+5"},
		{"", "nope=1"},
		{"", "memory-max"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, old, assignment string) {
		text, err := mergeSetProperty(old, []string{assignment})
		if err != nil {
			return
		}
		var raw map[string]any
		if _, err := toml.Decode(text, &raw); err != nil {
			t.Fatalf("set-property %q over %q wrote text that is not TOML: %v\n%s", assignment, old, err, text)
		}
		res, _ := raw["resources"].(map[string]any)
		if len(raw) != 1 || res == nil && strings.Contains(text, "=") {
			t.Fatalf("set-property %q wrote more than [resources]:\n%s", assignment, text)
		}
		again, err := mergeSetProperty(text, nil)
		if err != nil || again != text {
			t.Fatalf("merging %q again gave %q, %v", text, again, err)
		}
	})
}
