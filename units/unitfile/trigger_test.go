package unitfile

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTriggerSection(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"one.service": `[trigger]
uevent = { subsystem = "block", action = "add", env = { ID_FS_TYPE = "ext4", ID_FS_LABEL = "back*" } }
[service]
exec-start = "/bin/true"
`,
		"many.target": `[trigger]
uevent = [{ subsystem = "net", devname = "eth[0-9]" }, { action = "change", devtype = "disk" }]
`,
		"unknown-key.service": `[trigger]
uevent = { subsytem = "block" }
[service]
exec-start = "/bin/true"
`,
		"bad-glob.service": `[trigger]
uevent = { devname = "vd[" }
[service]
exec-start = "/bin/true"
`,
		"bad-env.service": `[trigger]
uevent = { env = { "A B" = "x" } }
[service]
exec-start = "/bin/true"
`,
		"not-a-table.service": `[trigger]
uevent = "block"
[service]
exec-start = "/bin/true"
`,
		"empty.service": `[trigger]
uevent = {}
[service]
exec-start = "/bin/true"
`,
		"wrong-type.socket": `[trigger]
uevent = { subsystem = "block" }
[socket]
listen-stream = "/run/x.sock"
`,
	})
	names := []string{"one.service", "many.target", "unknown-key.service", "bad-glob.service", "bad-env.service", "not-a-table.service", "empty.service", "wrong-type.socket"}
	var files []string
	for _, n := range names {
		files = append(files, filepath.Join(dir, n))
	}
	units, problems := Check(testContext(), files...)
	byName := map[string]*Unit{}
	for _, u := range units {
		byName[u.Name] = u
	}
	one := byName["one.service"]
	want := UeventTriggers{{Action: "add", Subsystem: "block", Env: map[string]string{"ID_FS_TYPE": "ext4", "ID_FS_LABEL": "back*"}}}
	if one == nil || one.Trigger == nil || !reflect.DeepEqual(one.Trigger.Uevent, want) || HasErrors(one.Problems) {
		t.Errorf("one.service: %+v", one)
	}
	many := byName["many.target"]
	wantMany := UeventTriggers{{Subsystem: "net", DevName: "eth[0-9]"}, {Action: "change", DevType: "disk"}}
	if many == nil || many.Trigger == nil || !reflect.DeepEqual(many.Trigger.Uevent, wantMany) {
		t.Errorf("many.target: %+v", many)
	}
	var text []string
	for _, p := range problems {
		text = append(text, strings.TrimPrefix(p.Error(), dir+"/"))
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{
		"unknown-key.service:2:1: [trigger] uevent: unknown key",
		"bad-glob.service:2:1: [trigger] uevent: devname: bad pattern",
		`bad-env.service:2:1: [trigger] uevent: env: "A B" is not an event key`,
		"not-a-table.service:2:1: [trigger] uevent: expected a table",
		"empty.service:2:1: [trigger] uevent: an empty trigger would match every device event",
		"wrong-type.socket:1:1: [trigger] section not allowed in a .socket unit",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing problem %q in:\n%s", want, all)
		}
	}
	for _, n := range names[2:] {
		if u := byName[n]; u == nil || u.LoadState != LoadStateBadSetting {
			t.Errorf("%s: %+v, want bad-setting", n, u)
		}
	}
}
