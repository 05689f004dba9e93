package cgroup

import "testing"

func TestSlicePath(t *testing.T) {
	for _, c := range []struct{ slice, want string }{
		{"-.slice", ""},
		{"system.slice", "system.slice"},
		{"a.slice", "a.slice"},
		{"a-b.slice", "a.slice/a-b.slice"},
		{"a-b-c.slice", "a.slice/a-b.slice/a-b-c.slice"},
		{"user-1000.slice", "user.slice/user-1000.slice"},
	} {
		got, err := SlicePath(c.slice)
		if err != nil || got != c.want {
			t.Errorf("SlicePath(%q) = %q, %v; want %q", c.slice, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a", "a.service", ".slice", "-a.slice", "a-.slice", "a--b.slice", "a/b.slice", "..slice"} {
		if got, err := SlicePath(bad); err == nil {
			t.Errorf("SlicePath(%q) = %q, want an error", bad, got)
		}
	}
}

func TestUnitPath(t *testing.T) {
	for _, c := range []struct{ unit, slice, want string }{
		{"foo.service", "", "system.slice/foo.service"},
		{"foo.service", "system.slice", "system.slice/foo.service"},
		{"foo.service", "-.slice", "foo.service"},
		{"getty@tty1.service", "", "system.slice/getty@tty1.service"},
		{"db.service", "app-db.slice", "app.slice/app-db.slice/db.service"},
		{"home.mount", "", "system.slice/home.mount"},
		{"app-web.slice", "", "app.slice/app-web.slice"},
		{"system.slice", "", "system.slice"},
	} {
		got, err := UnitPath(c.unit, c.slice)
		if err != nil || got != c.want {
			t.Errorf("UnitPath(%q, %q) = %q, %v; want %q", c.unit, c.slice, got, err, c.want)
		}
	}
	for _, bad := range [][2]string{{"", ""}, {"..", ""}, {"a/b.service", ""}, {"x.service", "bad"}, {"x.service", "a--b.slice"}} {
		if got, err := UnitPath(bad[0], bad[1]); err == nil {
			t.Errorf("UnitPath(%q, %q) = %q, want an error", bad[0], bad[1], got)
		}
	}
}

func TestParentSlices(t *testing.T) {
	got := ParentSlices("a-b-c.slice")
	if len(got) != 2 || got[0] != "a.slice" || got[1] != "a-b.slice" {
		t.Fatalf("ParentSlices = %v", got)
	}
	if got := ParentSlices("system.slice"); len(got) != 0 {
		t.Fatalf("ParentSlices(system.slice) = %v", got)
	}
}
