package unitfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocumentedKeys checks that docs/units.md names every key of the
// schema, so the reference cannot silently fall behind the code.
func TestDocumentedKeys(t *testing.T) {
	doc, err := os.ReadFile("../../docs/units.md")
	if err != nil {
		t.Skipf("docs/units.md: %v", err)
	}
	s := newSchema()
	for _, sec := range s.sections {
		if !strings.Contains(string(doc), "["+sec.name+"]") {
			t.Errorf("docs/units.md does not mention section [%s]", sec.name)
		}
		for _, k := range sec.keys {
			if !strings.Contains(string(doc), "`"+k+"`") && !strings.Contains(string(doc), "["+sec.name+"."+k+"]") {
				t.Errorf("docs/units.md does not document [%s] %s", sec.name, k)
			}
		}
	}
	for _, k := range conditionKindNames() {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/units.md does not document condition %s", k)
		}
	}
	for _, k := range limitNames() {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/units.md does not document limit %s", k)
		}
	}
}

// TestDocumentedExamples checks every example in docs/units.md that starts
// with "# file: NAME": each must load without an error.
func TestDocumentedExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/units.md")
	if err != nil {
		t.Skipf("docs/units.md: %v", err)
	}
	dir := t.TempDir()
	var files []string
	blocks := strings.Split(string(doc), "```toml\n")
	for _, b := range blocks[1:] {
		body, _, _ := strings.Cut(b, "```")
		first, _, _ := strings.Cut(body, "\n")
		name, ok := strings.CutPrefix(first, "# file: ")
		if !ok {
			continue
		}
		writeTree(t, dir, map[string]string{name: body})
		files = append(files, filepath.Join(dir, name))
	}
	if len(files) < 3 {
		t.Fatalf("only %d examples found", len(files))
	}
	units, problems := Check(Context{SkipExecCheck: true}, files...)
	for _, p := range problems {
		t.Errorf("example: %v", p)
	}
	for _, u := range units {
		if u.Name == "getty@.service" {
			// Words of the command as systemd would split them.
			want := []string{"/sbin/agetty", "-o", `-p -- \u`, "--noclear", "", "$TERM"}
			if got := u.Service.ExecStart[0].Argv; strings.Join(got, "|") != strings.Join(want, "|") || !u.Service.ExecStart[0].IgnoreFailure {
				t.Errorf("getty argv %q", got)
			}
		}
	}
}
