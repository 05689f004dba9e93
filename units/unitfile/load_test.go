package unitfile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeTree creates files under root; a content starting with "-> " makes
// a symlink to the rest.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func testContext() Context {
	return Context{RuntimeDir: "/run", Home: "/root", User: "root", UID: "0", Hostname: "testhost", MachineID: "0123"}
}

// twoDirs gives an /etc-like and a /usr/lib-like unit directory.
func twoDirs(t *testing.T) (Paths, string, string) {
	root := t.TempDir()
	etc, lib := filepath.Join(root, "etc"), filepath.Join(root, "lib")
	for _, d := range []string{etc, lib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Paths{etc, lib}, etc, lib
}

func mustLoad(t *testing.T, paths Paths, name string) *Unit {
	t.Helper()
	u, err := Load(paths, name, testContext())
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return u
}

func TestLoadPrecedenceAndDefaults(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"foo.service": "[unit]\ndescription = \"vendor\"\n[service]\nexec-start = \"/bin/true\"\n",
		"bar.service": "[service]\nexec-start = \"/bin/true\"\n",
	})
	writeTree(t, etc, map[string]string{
		"foo.service": "[unit]\ndescription = \"admin\"\n[service]\nexec-start = \"/bin/true\"\n",
	})
	u := mustLoad(t, paths, "foo.service")
	if u.Unit.Description != "admin" || u.Fragment != filepath.Join(etc, "foo.service") {
		t.Errorf("the earlier directory did not win: %q from %s", u.Unit.Description, u.Fragment)
	}
	b := mustLoad(t, paths, "bar.service")
	s := b.Service
	if b.LoadState != LoadStateLoaded || s.Type != ServiceSimple || s.Restart != RestartNo ||
		s.TimeoutStop != 90*time.Second || s.KillMode != KillControlGroup || !b.Unit.DefaultDependencies ||
		s.UMask != 0o022 || s.StandardOutput.Kind != StdIOLog || b.Socket != nil || b.Resources == nil {
		t.Errorf("defaults not applied: %+v", s)
	}
	if _, err := Load(paths, "missing.service", testContext()); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing unit: %v, want ErrNotFound", err)
	}
	if _, err := Load(paths, "bad name.service", testContext()); err == nil {
		t.Error("invalid name loaded")
	}
}

func TestDropInMergeOrderAndReset(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"foo.service": `
[unit]
description = "base"
wants = ["a.service"]
[service]
exec-start = "/bin/true"
exec-start-pre = ["/bin/true first", "/bin/true second"]
environment = { A = "1", B = "2" }
restart = "always"
`,
		"foo.service.d/10-desc.toml":  "[unit]\ndescription = \"from lib, hidden by etc\"\n",
		"foo.service.d/40-wants.toml": "[unit]\nwants = \"c.service\"\n",
		"service.d/05-all.toml":       "[service]\nrestart-sec = \"7s\"\n",
		"service.d/50-masked.toml":    "[service]\nrestart-sec = \"99s\"\n",
	})
	writeTree(t, etc, map[string]string{
		"foo.service.d/10-desc.toml":   "[unit]\ndescription = \"from etc\"\n",
		"foo.service.d/20-wants.toml":  "[unit]\nwants = [\"b.service\"]\n[service]\nenvironment = { B = \"two\", C = \"3\" }\n",
		"foo.service.d/30-reset.toml":  "[service]\nexec-start-pre = []\nrestart = \"on-failure\"\n",
		"foo.service.d/35-new.toml":    "[service]\nexec-start-pre = \"/bin/true third\"\n",
		"foo.service.d/50-masked.toml": "-> /dev/null",
		"foo.service.d/README":         "not a drop-in",
	})
	u := mustLoad(t, paths, "foo.service")
	var order []string
	for _, d := range u.DropIns {
		order = append(order, strings.TrimPrefix(d, filepath.Dir(etc)+"/"))
	}
	want := []string{"lib/service.d/05-all.toml", "etc/foo.service.d/10-desc.toml", "etc/foo.service.d/20-wants.toml",
		"etc/foo.service.d/30-reset.toml", "etc/foo.service.d/35-new.toml", "lib/foo.service.d/40-wants.toml"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("drop-ins applied %q, want %q", order, want)
	}
	if u.Unit.Description != "from etc" {
		t.Errorf("description %q", u.Unit.Description)
	}
	if !reflect.DeepEqual(u.Unit.Wants, []string{"a.service", "b.service", "c.service"}) {
		t.Errorf("wants %q: lists must append across drop-ins", u.Unit.Wants)
	}
	s := u.Service
	if len(s.ExecStartPre) != 1 || s.ExecStartPre[0].Argv[1] != "third" {
		t.Errorf("exec-start-pre %v: [] must reset before 35-new adds", s.ExecStartPre)
	}
	if s.Restart != RestartOnFailure || s.RestartSec != 7*time.Second {
		t.Errorf("restart %s restart-sec %v (50-masked.toml must be hidden by /dev/null)", s.Restart, s.RestartSec)
	}
	if !reflect.DeepEqual(s.Environment, Environment{"A=1", "B=two", "C=3"}) {
		t.Errorf("environment %q", s.Environment)
	}
}

func TestTemplatesAndSpecifiers(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"getty@.service": `
[unit]
description = "Getty on %I (%n, host %H)"
after = "systemd-user-sessions.service plymouth-quit-wait@%i.service"
[service]
exec-start = "/bin/echo agetty %I $TERM"
tty-path = "/dev/%I"
restart = "always"
[install]
wanted-by = "getty.target"
default-instance = "tty1"
`,
		"getty@.service.d/override.toml": "[service]\nenvironment = { TTY = \"%i\" }\n",
		"getty@tty9.service":             "[unit]\ndescription = \"special %i\"\n[service]\nexec-start = \"/bin/true\"\n",
		"bad@.service":                   "[unit]\ndescription = \"%Z\"\n[service]\nexec-start = \"/bin/true\"\n",
	})
	_ = etc
	u := mustLoad(t, paths, "getty@tty1.service")
	if u.Name != "getty@tty1.service" || !u.ID.IsInstance() || u.Fragment != filepath.Join(lib, "getty@.service") {
		t.Fatalf("instance from template: %s %+v %s", u.Name, u.ID, u.Fragment)
	}
	if u.Unit.Description != "Getty on tty1 (getty@tty1.service, host testhost)" {
		t.Errorf("description %q", u.Unit.Description)
	}
	if !reflect.DeepEqual(u.Unit.After, []string{"systemd-user-sessions.service", "plymouth-quit-wait@tty1.service"}) {
		t.Errorf("after %q", u.Unit.After)
	}
	if got := u.Service.ExecStart[0].Argv; !reflect.DeepEqual(got, []string{"/bin/echo", "agetty", "tty1", "$TERM"}) {
		t.Errorf("exec-start argv %q", got)
	}
	if u.Service.TTYPath != "/dev/tty1" {
		t.Errorf("tty-path %q", u.Service.TTYPath)
	}
	if v, _ := u.Service.Environment.Get("TTY"); v != "tty1" {
		t.Errorf("template drop-in not applied to the instance: TTY=%q", v)
	}
	// An instance with its own file uses it, plus the template's drop-ins.
	u9 := mustLoad(t, paths, "getty@tty9.service")
	if u9.Unit.Description != "special tty9" || u9.Fragment != filepath.Join(lib, "getty@tty9.service") {
		t.Errorf("instance file: %q from %s", u9.Unit.Description, u9.Fragment)
	}
	// An unknown specifier is an error with the place.
	b, err := Load(paths, "bad@x.service", testContext())
	var le *LoadError
	if !errors.As(err, &le) || b.LoadState != LoadStateBadSetting {
		t.Fatalf("bad specifier: %v", err)
	}
	want := filepath.Join(lib, "bad@.service") + `:2:1: [unit] description: unknown specifier %Z at offset 0 of "%Z"`
	if got := le.Problems[0].Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestMasksAndAliases(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"masked.service":              "[service]\nexec-start = \"/bin/true\"\n",
		"empty.service":               "",
		"real.service":                "[service]\nexec-start = \"/bin/true\"\n",
		"multi-user.target":           "[unit]\ndescription = \"Multi-User\"\n",
		"default.target":              "-> multi-user.target",
		"linked.service":              "-> " + filepath.Join(filepath.Dir(etc), "elsewhere", "linked.service"),
		"../elsewhere/linked.service": "[service]\nexec-start = \"/bin/true\"\n",
	})
	writeTree(t, etc, map[string]string{
		"masked.service": "-> /dev/null",
		"other.service":  "-> " + filepath.Join(lib, "real.service"),
	})
	for _, name := range []string{"masked.service", "empty.service"} {
		u, err := Load(paths, name, testContext())
		if err != nil || u.LoadState != LoadStateMasked {
			t.Errorf("%s: %v %v, want masked", name, u.LoadState, err)
		}
	}
	u := mustLoad(t, paths, "other.service")
	if u.Name != "real.service" || !reflect.DeepEqual(u.Aliases, []string{"other.service"}) {
		t.Errorf("alias: loaded %s with aliases %q", u.Name, u.Aliases)
	}
	d := mustLoad(t, paths, "default.target")
	if d.Name != "multi-user.target" || d.Unit.Description != "Multi-User" || !reflect.DeepEqual(d.Aliases, []string{"default.target"}) {
		t.Errorf("default.target: %s %q", d.Name, d.Aliases)
	}
	if l := mustLoad(t, paths, "linked.service"); l.Fragment != filepath.Join(filepath.Dir(etc), "elsewhere", "linked.service") {
		t.Errorf("linked unit read from %s", l.Fragment)
	}
	units, problems := Scan(paths, testContext())
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	if _, ok := units["other.service"]; ok {
		t.Error("Scan keyed an alias")
	}
	if r := units["real.service"]; r == nil || !reflect.DeepEqual(r.Aliases, []string{"other.service"}) {
		t.Errorf("Scan real.service: %+v", r)
	}
	if m := units["masked.service"]; m == nil || m.LoadState != LoadStateMasked {
		t.Errorf("Scan masked.service: %+v", m)
	}
}

func TestWantsDirectoriesAndScan(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"multi-user.target":                     "[unit]\nwants = \"x.service\"\n",
		"getty.target":                          "",
		"getty@.service":                        "[service]\nexec-start = \"/bin/echo %i\"\n",
		"foo.service":                           "[service]\nexec-start = \"/bin/true\"\n",
		"needed.service":                        "[service]\nexec-start = \"/bin/true\"\n",
		"multi-user.target.wants/foo.service":   "-> ../foo.service",
		"getty.target.wants/getty@tty1.service": "-> ../getty@.service",
	})
	writeTree(t, etc, map[string]string{
		"multi-user.target.requires/needed.service": "-> " + filepath.Join(lib, "needed.service"),
		"multi-user.target.wants/getty@.service":    "-> " + filepath.Join(lib, "getty@.service"),
	})
	units, problems := Scan(paths, testContext())
	mu := units["multi-user.target"]
	if mu == nil || !reflect.DeepEqual(mu.Unit.Wants, []string{"x.service", "foo.service"}) || !reflect.DeepEqual(mu.Unit.Requires, []string{"needed.service"}) {
		t.Fatalf("multi-user.target: %+v", mu)
	}
	inst := units["getty@tty1.service"]
	if inst == nil || inst.Service.ExecStart[0].Argv[1] != "tty1" {
		t.Errorf("instance linked in a .wants dir not loaded: %+v", inst)
	}
	if tmpl := units["getty@.service"]; tmpl == nil || !tmpl.ID.IsTemplate {
		t.Errorf("template not in Scan: %+v", tmpl)
	}
	if units["getty.target"].LoadState != LoadStateMasked {
		t.Error("empty getty.target must be masked")
	}
	// The template linked as a dependency is a warning naming the link.
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "multi-user.target.wants/getty@.service: warning: a template cannot be a dependency") {
		t.Errorf("problems: %v", problems)
	}
}

func TestBrokenUnitsAmongGoodOnes(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"good.service":     "[service]\nexec-start = \"/bin/true\"\n",
		"syntax.service":   "[service]\nexec-start = \"/bin/true\"\ntype = \n",
		"typo.service":     "[service]\nexec-start = \"/bin/true\"\n  restart-secs = 5\n",
		"wrongtype.socket": "[socket]\nlisten-stream = \"/run/x.sock\"\n[service]\ntype = \"simple\"\n",
		"noexec.service":   "[service]\nexec-start = \"/nonexistent/bin/daemon --flag\"\n",
		"another.target":   "[unit]\ndescription = \"fine\"\n",
	})
	// Unreadable directories: a file where a directory should be, and a
	// symlink loop (root bypasses permission bits, so mode 000 would not
	// fail here).
	notDir := filepath.Join(filepath.Dir(etc), "notdir")
	loop := filepath.Join(filepath.Dir(etc), "loop")
	writeTree(t, filepath.Dir(etc), map[string]string{"notdir": "x", "loop": "-> loop"})
	paths = append(paths, notDir, loop, filepath.Join(filepath.Dir(etc), "does-not-exist"))

	units, problems := Scan(paths, testContext())
	for _, name := range []string{"good.service", "another.target", "noexec.service"} {
		if u := units[name]; u == nil || u.LoadState != LoadStateLoaded {
			t.Errorf("%s did not load: %+v", name, u)
		}
	}
	for _, name := range []string{"syntax.service", "typo.service", "wrongtype.socket"} {
		if u := units[name]; u == nil || u.LoadState != LoadStateBadSetting {
			t.Errorf("%s: %+v, want bad-setting", name, u)
		}
	}
	var got []string
	for _, p := range problems {
		got = append(got, strings.TrimPrefix(p.Error(), lib+"/"))
	}
	want := []string{
		`noexec.service:2:1: warning: [service] exec-start: executable "/nonexistent/bin/daemon" is missing or not executable`,
		"syntax.service:3:8: invalid TOML: expected value but found '\\n' instead",
		"typo.service:3:3: [service] restart-secs: unknown key (did you mean 'restart-sec'?)",
		"wrongtype.socket:3:1: [service] section not allowed in a .socket unit (allowed: [unit], [install], [socket], [resources])",
		notDir + ": cannot read unit directory: not a directory",
		loop + ": cannot read unit directory: too many levels of symbolic links",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProblemPlacesAndSuggestions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "foo.service")
	writeTree(t, dir, map[string]string{"foo.service": `# a comment
description = "outside"

[unit]
  wants = ["ok.service", "not a unit"]
  condition.path-exist = "/x"

[unit.assert]
path-exists = "relative"

[srevice]
x = 1

[service]
exec-start = """
/bin/echo multi
"""
exec-strat = "/bin/true"
type = "forkin"
restart = 5
restart-sec = "fast"
environment = { GOOD = "1", "9BAD" = "x" }
user = "-bad"
nice = -21
kill-signal = "SIGNOPE"
slice = "x.slice"
success-exit-status = "0 999"

[service.limits]
nofile = "infinity"
cores = 0
`})
	_, problems := Check(testContext(), file)
	var got []string
	for _, p := range problems {
		got = append(got, strings.TrimPrefix(p.Error(), dir+"/"))
	}
	want := []string{
		"foo.service:2:1: description: key outside any section (put it under [unit])",
		`foo.service:5:3: [unit] wants: invalid unit name "not a unit": no type suffix (like .service)`,
		"foo.service:6:13: [unit.condition] path-exist: unknown key (did you mean 'path-exists'?)",
		`foo.service:9:1: [unit.assert] path-exists: "relative" is not an absolute path`,
		"foo.service:11:1: [srevice] unknown section (did you mean [service]?)",
		"foo.service:18:1: [service] exec-strat: unknown key (did you mean 'exec-start'?)",
		"foo.service:19:1: [service] type: expected one of simple, exec, forking, oneshot, notify, notify-reload, idle, dbus, got \"forkin\" (did you mean 'forking'?)",
		"foo.service:20:1: [service] restart: expected one of no, on-success, on-failure, on-abnormal, on-watchdog, on-abort, always, got integer 5",
		`foo.service:21:1: [service] restart-sec: time span "fast", at offset 0: expected a number, found "fast"`,
		`foo.service:22:29: [service.environment] 9BAD: invalid environment variable name "9BAD"`,
		`foo.service:23:1: [service] user: invalid user or group name "-bad": must not start with '-'`,
		"foo.service:24:1: [service] nice: -21 out of range -20..19",
		`foo.service:25:1: [service] kill-signal: unknown signal "SIGNOPE"`,
		"foo.service:26:1: [service] slice: unknown key (it belongs in [resources])",
		"foo.service:27:1: [service] success-exit-status: exit status 999 out of range 0..255",
		"foo.service:31:1: [service.limits] cores: unknown key (did you mean 'core'?)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCrossKeyChecks(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"noexec.service":   "[service]\ntype = \"simple\"\n",
		"oneshot.service":  "[service]\ntype = \"oneshot\"\nexec-start = [[\"/bin/true\"], [\"/bin/echo\", \"x\"]]\nremain-after-exit = true\n",
		"two.service":      "[service]\nexec-start = [[\"/bin/true\"], [\"/bin/true\"]]\n",
		"timeouts.service": "[service]\nexec-start = \"/bin/true\"\ntimeout-sec = 5\ntimeout-stop = \"1min\"\n",
		"mnt-data.mount":   "[mount]\nwhat = \"/dev/vdb\"\ntype = \"ext4\"\n",
		"mnt-other.mount":  "[mount]\nwhat = \"/dev/vdb\"\nwhere = \"/mnt/data\"\n",
		"nowhat.mount":     "[mount]\ntype = \"tmpfs\"\n",
		"idle.timer":       "[timer]\naccuracy = \"1s\"\n",
		"daily.timer":      "[timer]\non-calendar = \"daily\"\non-boot = [\"2s\", 60]\npersistent = true\n",
		"web.socket":       "[socket]\nlisten-stream = [\"127.0.0.1:8080\", \"/run/web.sock\"]\naccept = true\nmax-connections = 10\n",
		"spool.path":       "[path]\npath-exists = \"/var/spool/x\"\nhold = true\nhold-timeout = \"5s\"\nhold-verdict = \"deny\"\n",
		"limited.service":  "[service]\nexec-start = \"/bin/true\"\n[resources]\nmemory-max = \"50%\"\ntasks-max = 50\ncpu-quota = \"150%\"\nio-read-bandwidth-max = { \"/dev/vda\" = \"10M\" }\ndelegate = true\nslice = \"work.slice\"\n",
		"bad-res.service":  "[service]\nexec-start = \"/bin/true\"\n[resources]\nmemory-max = \"lots\"\ncpu-weight = 0\n",
	})
	files := []string{}
	for _, n := range []string{"noexec.service", "oneshot.service", "two.service", "timeouts.service", "mnt-data.mount", "mnt-other.mount", "nowhat.mount", "idle.timer", "daily.timer", "web.socket", "spool.path", "limited.service", "bad-res.service"} {
		files = append(files, filepath.Join(dir, n))
	}
	units, problems := Check(testContext(), files...)
	var got []string
	for _, p := range problems {
		got = append(got, strings.TrimPrefix(p.Error(), dir+"/"))
	}
	// Check reports file by file, in the order given.
	want := []string{
		"noexec.service:1:1: [service] exec-start: is required for type simple (only oneshot services may have none)",
		"two.service:2:1: [service] exec-start: has 2 commands: only type oneshot may have more than one",
		`mnt-other.mount:3:1: [mount] where: "/mnt/data" does not match the unit name: its unit is mnt-data.mount`,
		"nowhat.mount:1:1: [mount] what: is required: the device, file or remote file system to mount",
		"idle.timer:1:1: [timer] no trigger: set on-calendar, on-active, on-boot, on-startup, on-unit-active or on-unit-inactive",
		"bad-res.service:4:1: [resources] memory-max: size \"lots\": expected a number with an optional suffix B, K, M, G, T, P, E",
		"bad-res.service:5:1: [resources] cpu-weight: 0 out of range 1..10000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	byName := map[string]*Unit{}
	for _, u := range units {
		byName[u.Name] = u
	}
	if s := byName["oneshot.service"].Service; len(s.ExecStart) != 2 || s.TimeoutStart != Infinity || !s.RemainAfterExit {
		t.Errorf("oneshot: %+v", s)
	}
	if s := byName["timeouts.service"].Service; s.TimeoutStart != 5*time.Second || s.TimeoutStop != time.Minute || s.TimeoutAbort != time.Minute {
		t.Errorf("timeout-sec then timeout-stop: start %v stop %v abort %v", s.TimeoutStart, s.TimeoutStop, s.TimeoutAbort)
	}
	if m := byName["mnt-data.mount"].Mount; m.Where != "/mnt/data" || m.FSType != "ext4" {
		t.Errorf("mount: %+v", m)
	}
	if tm := byName["daily.timer"].Timer; tm.Unit != "daily.service" || !reflect.DeepEqual(tm.OnBoot, []time.Duration{2 * time.Second, time.Minute}) || !tm.Persistent {
		t.Errorf("timer: %+v", tm)
	}
	if so := byName["web.socket"].Socket; so.Service != "web@.service" || so.MaxConnections != 10 || so.Backlog != 4096 {
		t.Errorf("socket: %+v", so)
	}
	if p := byName["spool.path"].Path; p.Unit != "spool.service" || !p.Hold || p.HoldVerdict != "deny" || p.HoldTimeout != 5*time.Second {
		t.Errorf("path: %+v", p)
	}
	r := byName["limited.service"].Resources
	if r.MemoryMax == nil || r.MemoryMax.Percent != 50 || r.TasksMax.Count != 50 || *r.CPUQuota != 150 ||
		r.IOReadBandwidthMax[0] != (DeviceLimit{"/dev/vda", Size{Bytes: 10 << 20}}) || !r.Delegate.Enabled || r.Slice != "work.slice" || r.MemoryHigh != nil {
		t.Errorf("resources: %+v", r)
	}
}

func TestCheckDropInAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"foo.service.d/override.toml": "[service]\nrestart = \"always\"\n",
		"service.d/all.toml":          "[service]\nrestrat = \"always\"\n",
	})
	_, problems := Check(testContext(), filepath.Join(dir, "foo.service.d/override.toml"))
	if len(problems) != 0 {
		t.Errorf("a valid drop-in gave %v (it needs no exec-start of its own)", problems)
	}
	_, problems = Check(testContext(), filepath.Join(dir, "service.d/all.toml"), filepath.Join(dir, "gone.service"), filepath.Join(dir, "noname"))
	if len(problems) != 3 || !strings.Contains(problems[0].Error(), "all.toml:2:1: [service] restrat: unknown key (did you mean 'restart'?)") ||
		!strings.Contains(problems[1].Error(), "gone.service: cannot read: no such file or directory") ||
		!strings.Contains(problems[2].Error(), "noname: invalid unit name") {
		t.Errorf("problems: %v", problems)
	}
}

func TestEnableDisableIsEnabled(t *testing.T) {
	paths, etc, lib := twoDirs(t)
	writeTree(t, lib, map[string]string{
		"web.service":       "[service]\nexec-start = \"/bin/true\"\n[install]\nwanted-by = \"multi-user.target\"\nrequired-by = [\"graphical.target\"]\nalias = \"www.service\"\nalso = \"web.socket\"\n",
		"web.socket":        "[socket]\nlisten-stream = \"80\"\n[install]\nwanted-by = \"sockets.target\"\n",
		"static.service":    "[service]\nexec-start = \"/bin/true\"\n",
		"helper.service":    "[service]\nexec-start = \"/bin/true\"\n[install]\nalso = \"web.service\"\n",
		"getty@.service":    "[service]\nexec-start = \"/bin/true\"\n[install]\nwanted-by = \"getty.target\"\ndefault-instance = \"tty1\"\n",
		"tmpl@.service":     "[service]\nexec-start = \"/bin/true\"\n[install]\nwanted-by = \"multi-user.target\"\n",
		"masked.service":    "[service]\nexec-start = \"/bin/true\"\n",
		"multi-user.target": "[unit]\n",
	})
	writeTree(t, etc, map[string]string{"masked.service": "-> /dev/null"})
	ctx := testContext()
	state := func(name string) string {
		s, err := IsEnabled(paths, name, ctx)
		if err != nil {
			t.Fatalf("IsEnabled(%s): %v", name, err)
		}
		return s
	}
	for name, want := range map[string]string{"web.service": "disabled", "static.service": "static", "helper.service": "indirect",
		"masked.service": "masked", "getty@.service": "disabled", "tmpl@.service": "indirect"} {
		if got := state(name); got != want {
			t.Errorf("before enable: %s is %s, want %s", name, got, want)
		}
	}
	changes, err := Enable(paths, "web.service", ctx)
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, c := range changes {
		made = append(made, strings.TrimPrefix(c.Path, etc+"/")+" -> "+strings.TrimPrefix(c.Target, lib+"/"))
	}
	want := []string{"multi-user.target.wants/web.service -> web.service", "graphical.target.requires/web.service -> web.service",
		"www.service -> web.service", "sockets.target.wants/web.socket -> web.socket"}
	if !reflect.DeepEqual(made, want) {
		t.Errorf("changes %q, want %q", made, want)
	}
	if state("web.service") != "enabled" || state("web.socket") != "enabled" || state("www.service") != "alias" {
		t.Errorf("after enable: %s %s %s", state("web.service"), state("web.socket"), state("www.service"))
	}
	// Enabling twice changes nothing; the links make web.service wanted.
	if again, err := Enable(paths, "web.service", ctx); err != nil || len(again) != 0 {
		t.Errorf("second enable: %v %v", again, err)
	}
	units, _ := Scan(paths, ctx)
	if mu := units["multi-user.target"]; mu == nil || !contains(mu.Unit.Wants, "web.service") {
		t.Errorf("multi-user.target after enable: %+v", mu)
	}
	if _, err := Enable(paths, "getty@.service", ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Readlink(filepath.Join(etc, "getty.target.wants", "getty@tty1.service")); err != nil || state("getty@.service") != "enabled" {
		t.Errorf("template enabled as its default instance: %v %s", err, state("getty@.service"))
	}
	if _, err := Enable(paths, "tmpl@.service", ctx); err == nil {
		t.Error("template without default-instance enabled")
	}
	if _, err := Enable(paths, "masked.service", ctx); err == nil {
		t.Error("masked unit enabled")
	}
	if _, err := Disable(paths, "web.service", ctx); err != nil {
		t.Fatal(err)
	}
	if state("web.service") != "disabled" || state("web.socket") != "disabled" {
		t.Errorf("after disable: %s %s", state("web.service"), state("web.socket"))
	}
	if _, err := os.Lstat(filepath.Join(etc, "www.service")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("alias link left: %v", err)
	}
	if _, err := Disable(paths, "getty@.service", ctx); err != nil || state("getty@.service") != "disabled" {
		t.Errorf("template disable: %v %s", err, state("getty@.service"))
	}
}
