package fstab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/units/unitfile"
)

// TestPartitionAndLoopEntries: PARTUUID= and PARTLABEL= become their
// by-part* links (bound to that device), and an image file with the loop
// option keeps the file as what and the options for the mount unit.
func TestPartitionAndLoopEntries(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "fstab")
	os.WriteFile(src, []byte(`PARTUUID=6E1F2A3B-4C5D-4E6F-8A9B-0C1D2E3F4A5B /mnt/part ext4 defaults 0 2
PARTLABEL=vigil\040second /mnt/plabel ext4 defaults 0 2
PARTUUID=1a2b3c4d-05 none swap sw 0 0
/srv/img.ext4 /mnt/img ext4 loop,ro,offset=4096 0 0
`), 0o644)
	out := filepath.Join(dir, "gen")
	os.Mkdir(out, 0o755)
	if errs := Generate(Options{Path: src, DiskDir: "/dev/disk"}, out); len(errs) > 0 {
		t.Fatal(errs)
	}
	for name, want := range map[string][]string{
		"mnt-part.mount":   {`what = "/dev/disk/by-partuuid/6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"`},
		"mnt-plabel.mount": {`what = "/dev/disk/by-partlabel/vigil\\x20second"`},
		"mnt-img.mount":    {`what = "/srv/img.ext4"`, `options = "loop,ro,offset=4096"`, `type = "ext4"`},
		`dev-disk-by\x2dpartuuid-1a2b3c4d\x2d05.swap`: {`what = "/dev/disk/by-partuuid/1a2b3c4d-05"`},
	} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s not generated: %v", name, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %s:\n%s", name, w, b)
			}
		}
		if _, err := unitfile.ParseName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
