package unitfile

import (
	"path/filepath"
	"testing"
)

// standard-input = "socket" (or a terminal) makes standard-output default to
// inherit, so the reply goes back on the connection; a standard-output the
// file sets wins, and without such an input the default stays log.
func TestStdioDefaultsFollowInput(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"conn@.service":              "[service]\nexec-start = \"/bin/cat\"\nstandard-input = \"socket\"\n",
		"tty.service":                "[service]\nexec-start = \"/bin/cat\"\nstandard-input = \"tty\"\n",
		"logged@.service":            "[service]\nexec-start = \"/bin/cat\"\nstandard-input = \"socket\"\nstandard-output = \"log\"\n",
		"plain.service":              "[service]\nexec-start = \"/bin/cat\"\n",
		"dropped@.service":           "[service]\nexec-start = \"/bin/cat\"\n",
		"dropped@.service.d/in.toml": "[service]\nstandard-input = \"socket\"\n",
	})
	var files []string
	for _, n := range []string{"conn@.service", "tty.service", "logged@.service", "plain.service"} {
		files = append(files, filepath.Join(dir, n))
	}
	units, problems := Check(testContext(), files...)
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	want := map[string][2]StdIOKind{
		"conn@.service":   {StdIOInherit, StdIOInherit},
		"tty.service":     {StdIOInherit, StdIOInherit},
		"logged@.service": {StdIOLog, StdIOInherit},
		"plain.service":   {StdIOLog, StdIOInherit},
	}
	for _, u := range units {
		w := want[u.Name]
		if got := u.Service.StandardOutput.Kind; got != w[0] {
			t.Errorf("%s: standard-output %s, want %s", u.Name, got, w[0])
		}
		if got := u.Service.StandardError.Kind; got != w[1] {
			t.Errorf("%s: standard-error %s, want %s", u.Name, got, w[1])
		}
	}
	// The input set in a drop-in counts as much as one in the unit file.
	u := mustLoad(t, Paths{dir}, "dropped@1.service")
	if got := u.Service.StandardOutput.Kind; got != StdIOInherit {
		t.Errorf("drop-in standard-input = socket: standard-output %s, want inherit", got)
	}
}
