package kmod

import (
	"path"
	"strings"
	"testing"
)

func TestFnmatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"virtio:d00000002v*", "virtio:d00000002v00001AF4", true},
		{"virtio:d00000002v*", "virtio:d00000003v00001AF4", false},
		{"pci:v00001AF4d00001001sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*/b", "a/x/b", true}, // no FNM_PATHNAME: '*' crosses '/'
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[^a-c]x", "dx", true},
		{"[]]", "]", true},
		{"[a-]", "-", true},
		{"[abc", "[abc", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"*a*a*a*a*a*b", strings.Repeat("a", 200), false},
		{"acpi*:PNP0A03:*", "acpi:PNP0A03:", true},
	}
	for _, tc := range cases {
		if got := fnmatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func FuzzFnmatch(f *testing.F) {
	f.Add("virtio:d00000002v*", "virtio:d00000002v00001AF4")
	f.Add("[!a-z]?*x", "1bbx")
	f.Add(`a\`, `a\`)
	f.Add("[", "[")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := fnmatch(pattern, name)
		// Where Go's path.Match has the same semantics (no '/', no sets,
		// no escapes), both must agree.
		if !strings.ContainsAny(pattern+name, `/[\`) && isASCII(pattern+name) {
			want, err := path.Match(pattern, name)
			if err == nil && got != want {
				t.Fatalf("fnmatch(%q,%q) = %v, path.Match = %v", pattern, name, got, want)
			}
		}
		// A literal prefix and one '*' match anything starting with it.
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(prefix, `*?[\`) && !fnmatch(pattern, prefix+name) {
			t.Fatalf("prefix pattern %q does not match %q", pattern, prefix+name)
		}
		if !strings.ContainsAny(name, `*?[\`) && !fnmatch(name, name) {
			t.Fatalf("literal %q does not match itself", name)
		}
	})
}

func FuzzParseIndexes(f *testing.F) {
	f.Add("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\nkernel/lib/crc16.ko:\n")
	f.Add("alias virtio:d00000002v* virtio_blk\nalias x\n")
	f.Add("softdep ext4 pre: crypto-crc32c post: x\nsoftdep a b\n")
	f.Add("options a b=c \\\nd=e\nblacklist x\ninstall y /bin/true\n# c\n")
	f.Add(":\n: :\n::::\n\x00\n")
	f.Fuzz(func(t *testing.T, data string) {
		deps, err := parseModulesDep(strings.NewReader(data))
		if err != nil {
			return
		}
		for name, e := range deps {
			if name == "" || e.Path == "" {
				t.Fatalf("empty module from %q", data)
			}
		}
		aliases, _ := parseAliasLines(strings.NewReader(data))
		for _, a := range aliases {
			if a.Pattern == "" {
				t.Fatal("empty alias pattern")
			}
		}
		_, _ = parseSoftdepLines(strings.NewReader(data))
		_, _ = parseModulesBuiltin(strings.NewReader(data))
		_, _ = parseModulesLoadConf(strings.NewReader(data))
		cfg := newModprobeConfig()
		_ = parseModprobeConf(strings.NewReader(data), cfg)
		idx := &depIndex{byName: deps, aliases: aliases, builtin: map[string]bool{}, softdep: map[string]softdepEntry{}}
		l := &Loader{moddir: "/x", index: idx, config: cfg}
		for name := range deps {
			steps, err := l.Plan(name)
			if err != nil || len(steps) == 0 {
				t.Fatalf("Plan(%s) = %v, %v", name, steps, err)
			}
		}
	})
}

// isASCII: path.Match's '?' takes a rune, fnmatch in the C locale a byte.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
