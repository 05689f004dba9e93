package cgroup

import (
	"strings"
	"testing"
)

// FuzzSlicePath: slice names come from unit files ([resources] slice) and
// D-Bus (StartTransientUnit's Slice). A name SlicePath accepts must give
// a path inside the tree, one directory per level, made of exactly the
// parents ParentSlices lists and the slice itself.
func FuzzSlicePath(f *testing.F) {
	for _, s := range []string{"-.slice", "system.slice", "a-b-c.slice", "user-1000.slice", "a--b.slice",
		"..slice", "-a.slice", "a-.slice", "a/b.slice", "x", "", "../.slice", "a-..slice", ".-..slice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		path, err := SlicePath(name)
		parents := ParentSlices(name)
		if err != nil {
			return
		}
		if name == RootSlice {
			if path != "" {
				t.Fatalf("root slice path %q", path)
			}
			return
		}
		dirs := strings.Split(path, "/")
		want := append(append([]string(nil), parents...), name)
		if strings.Join(dirs, "\n") != strings.Join(want, "\n") {
			t.Fatalf("SlicePath(%q) = %q, want the levels %q", name, path, want)
		}
		for _, d := range dirs {
			if d == "" || d == "." || d == ".." || !strings.HasSuffix(d, ".slice") || strings.ContainsRune(d, 0) {
				t.Fatalf("SlicePath(%q) = %q: level %q is not a slice directory", name, path, d)
			}
		}
		if unit, err := UnitPath("x.service", name); err != nil || unit != path+"/x.service" {
			t.Fatalf("UnitPath(x.service, %q) = %q, %v; want %q", name, unit, err, path+"/x.service")
		}
	})
}
