package unitfile

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestExecDirectoryKeys loads the unit-directory keys and checks that a
// bad path is an error naming the file, line and key.
func TestExecDirectoryKeys(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"ok.service": "[service]\nexec-start = \"/bin/true\"\nruntime-directory = \"a b/c\"\nstate-directory = [\"s\"]\n" +
			"cache-directory = \"c\"\nlogs-directory = \"l\"\nconfiguration-directory = \"e\"\nstate-directory-mode = \"0700\"\n" +
			"runtime-directory-preserve = \"restart\"\n",
		"bad.service":  "[service]\nexec-start = \"/bin/true\"\nstate-directory = \"../escape\"\n",
		"abs.service":  "[service]\nexec-start = \"/bin/true\"\n\ncache-directory = \"/var/cache/x\"\n",
		"keep.service": "[service]\nexec-start = \"/bin/true\"\nruntime-directory-preserve = \"sometimes\"\n",
	})
	paths := Paths{dir}
	u, err := Load(paths, "ok.service", testContext())
	if err != nil {
		t.Fatal(err)
	}
	ec := u.Service.ExecContext
	if !reflect.DeepEqual(ec.RuntimeDirectory, []string{"a", "b/c"}) || !reflect.DeepEqual(ec.StateDirectory, []string{"s"}) ||
		ec.StateDirectoryMode != 0o700 || ec.CacheDirectoryMode != 0o755 || ec.RuntimeDirectoryPreserve != "restart" {
		t.Errorf("decoded %+v", ec)
	}
	for name, want := range map[string]string{
		"bad.service":  filepath.Join(dir, "bad.service") + `:3:1: [service] state-directory: "../escape" is not a normalized relative path`,
		"abs.service":  filepath.Join(dir, "abs.service") + `:4:1: [service] cache-directory: "/var/cache/x" is not a relative path`,
		"keep.service": filepath.Join(dir, "keep.service") + `:3:1: [service] runtime-directory-preserve:`,
	} {
		_, err := Load(paths, name, testContext())
		var le *LoadError
		if !errors.As(err, &le) || len(le.Problems) == 0 {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := le.Problems[0].Error(); !strings.HasPrefix(got, want) {
			t.Errorf("%s:\n got %s\nwant %s...", name, got, want)
		}
	}
}

// FuzzRelativePath: whatever the check accepts stays below its root when
// joined to it, and is already clean.
func FuzzRelativePath(f *testing.F) {
	for _, s := range []string{"foo", "foo/bar", "../x", "a/../b", "/abs", "a//b", "a/./b", ".", "", "a/", "x\x00y", "é/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkRelativePath(s) != nil {
			return
		}
		if filepath.IsAbs(s) || filepath.Clean(s) != s || s == "." {
			t.Fatalf("accepted %q, which is not a clean relative path", s)
		}
		root := "/run"
		if j := filepath.Join(root, s); !strings.HasPrefix(j, root+"/") {
			t.Fatalf("accepted %q, which leads to %s outside %s", s, j, root)
		}
	})
}
