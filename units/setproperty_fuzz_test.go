package units

import (
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzMergeSetProperty feeds two `initctl set-property` assignments, one
// after the other, to mergeSetProperty: what it writes each time must be
// TOML the unit loader can read, holding nothing but [resources], and
// merging it again with nothing changes nothing. A hand-edited old
// drop-in may be anything: that must only not panic.
func FuzzMergeSetProperty(f *testing.F) {
	for _, s := range [][3]string{
		{"memory-max=64M", "cpu-weight=200", ""},
		{"cpu-weight=200", "cpu-weight=", "[resources]\nmemory-max = \"64M\"\n"},
		{"cpu-weight=007", "tasks-max=+5", ""},
		{"io-read-bandwidth-max=/dev/vda 1M", "delegate=yes", ""},
		{"memory-max=\x01\a\v\x7f\"\\", "memory-max=\xff", "# c\nmemory-max = = x\n"},
		{"nope=1", "memory-max", "[resources\n"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, first, second, old string) {
		mergeSetProperty(old, []string{first, second})
		text := ""
		for _, a := range []string{first, second} {
			next, err := mergeSetProperty(text, []string{a})
			if err != nil {
				continue
			}
			var raw map[string]any
			if _, err := toml.Decode(next, &raw); err != nil {
				t.Fatalf("set-property %q over %q wrote text that is not TOML: %v\n%s", a, text, err, next)
			}
			if _, ok := raw["resources"]; len(raw) != 1 || !ok {
				t.Fatalf("set-property %q wrote more than [resources]:\n%s", a, next)
			}
			again, err := mergeSetProperty(next, nil)
			if err != nil || again != next {
				t.Fatalf("merging %q again gave %q, %v", next, again, err)
			}
			text = next
		}
	})
}
