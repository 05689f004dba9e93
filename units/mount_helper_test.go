package units

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// helperHarness has a mount unit of type vigiltest (or typ) whose helper,
// mount.NAME in a directory of the test, runs script.
type helperHarness struct {
	*mountHarness
	dir, where, name, argsFile, pidFile string
}

func newHelperHarness(t *testing.T, typ, helperName, options, timeout, script string) *helperHarness {
	t.Helper()
	x := &helperHarness{}
	x.mountHarness = newMountHarness(t, func(dir string) map[string]string {
		x.dir = dir
		x.where = filepath.Join(dir, "mnt", "net")
		x.name = mountName(t, x.where)
		x.argsFile, x.pidFile = filepath.Join(dir, "args"), filepath.Join(dir, "pid")
		return map[string]string{x.name: "[mount]\nwhat = \"server:/export\"\nwhere = \"" + x.where + "\"\ntype = \"" + typ +
			"\"\noptions = \"" + options + "\"\ntimeout = \"" + timeout + "\"\n"}
	}, nil)
	helpers := filepath.Join(x.dir, "sbin")
	os.MkdirAll(helpers, 0o755)
	body := "#!/bin/sh\necho $$ > " + x.pidFile + "\necho \"$@\" > " + x.argsFile + "\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(helpers, helperName), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	x.do(func() { x.m.mounts.helperDirs = []string{filepath.Join(x.dir, "nothing-here"), helpers} })
	return x
}

func (x *helperHarness) args() string {
	b, err := os.ReadFile(x.argsFile)
	if err != nil {
		x.t.Fatalf("the helper did not run: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestMountHelperRunsLikeMount8: a type with /sbin/mount.TYPE is mounted
// by running it with mount(8)'s arguments; the options only Vigil reads
// are left out, and its output is in the unit's log.
func TestMountHelperRunsLikeMount8(t *testing.T) {
	x := newHelperHarness(t, "vigiltest", "mount.vigiltest", "ro,nofail,x-systemd.automount,vers=4.2,_netdev", "30s",
		`echo "helper says hello" >&2; exit 0`)
	if res, why := x.start(x.name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, x.logText())
	}
	if got, want := x.args(), "server:/export "+x.where+" -n -o ro,vers=4.2"; got != want {
		t.Errorf("helper args %q, want %q", got, want)
	}
	if !strings.Contains(x.logText(), "mount.vigiltest: helper says hello") {
		t.Errorf("helper output not in the log:\n%s", x.logText())
	}
}

// TestMountHelperFailureIsTheUnitsStatus: a helper's exit status and its
// last words become the failure reason.
func TestMountHelperFailureIsTheUnitsStatus(t *testing.T) {
	x := newHelperHarness(t, "vigiltest", "mount.vigiltest", "", "30s",
		`echo "mount error(13): Permission denied" >&2; echo "Refer to the mount.vigiltest(8) manual page" >&2; exit 32`)
	res, why := x.start(x.name)
	if res != api.ResultFailed {
		t.Fatalf("start: %s (%s)", res, why)
	}
	status := x.prop(x.name, "Result")
	if status != "exit-code" {
		t.Errorf("Result = %s", status)
	}
	var text string
	x.do(func() { text = x.m.Unit(x.name).behaviour.(*mount).reason })
	for _, want := range []string{"mount.vigiltest exited with status=32", "mount error(13): Permission denied", "Refer to the mount.vigiltest(8)"} {
		if !strings.Contains(text, want) {
			t.Errorf("reason %q lacks %q", text, want)
		}
	}
}

// TestMountHelperForSubtype: fuse.NAME without mount.fuse.NAME runs
// mount.fuse with -t fuse.NAME; sloppy-options adds -s.
func TestMountHelperForSubtype(t *testing.T) {
	x := newHelperHarness(t, "fuse.vigiltest", "mount.fuse", "allow_other", "30s", "exit 0")
	x.write(map[string]string{x.name: "[mount]\nwhat = \"server:/export\"\nwhere = \"" + x.where +
		"\"\ntype = \"fuse.vigiltest\"\noptions = \"allow_other\"\nsloppy-options = true\n"})
	x.do(func() { x.m.Reload(); x.m.mounts.helperDirs = []string{filepath.Join(x.dir, "sbin")} })
	if res, why := x.start(x.name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, x.logText())
	}
	if got, want := x.args(), "server:/export "+x.where+" -s -n -o allow_other -t fuse.vigiltest"; got != want {
		t.Errorf("helper args %q, want %q", got, want)
	}
}

// TestFuseWithoutHelperFails names the missing helper.
func TestFuseWithoutHelperFails(t *testing.T) {
	x := newHelperHarness(t, "fuse.vigilnone", "mount.other", "", "30s", "exit 0")
	if res, _ := x.start(x.name); res != api.ResultFailed {
		t.Fatalf("start: %s, want failed", res)
	}
	var text string
	x.do(func() { text = x.m.Unit(x.name).behaviour.(*mount).reason })
	if !strings.Contains(text, "needs a user-space mount helper") || !strings.Contains(text, "mount.fuse.vigilnone") {
		t.Errorf("reason %q", text)
	}
}

// TestHangingMountHelperIsKilledAtTheTimeout.
func TestHangingMountHelperIsKilledAtTheTimeout(t *testing.T) {
	x := newHelperHarness(t, "vigiltest", "mount.vigiltest", "", "1s", "exec sleep 60")
	res, why := x.start(x.name)
	if res != api.ResultFailed {
		t.Fatalf("start: %s (%s)", res, why)
	}
	if r := x.prop(x.name, "Result"); r != "timeout" {
		t.Errorf("Result = %s, want timeout", r)
	}
	// The pid from the log: on a loaded machine the helper may be killed
	// before its first line ran.
	log := x.logText()
	i := strings.Index(log, "Killing mount.vigiltest (pid ")
	if i < 0 {
		t.Fatalf("no kill in the log:\n%s", log)
	}
	rest := log[i+len("Killing mount.vigiltest (pid "):]
	pid, err := strconv.Atoi(rest[:strings.IndexByte(rest, ')')])
	if err != nil || pid <= 0 {
		t.Fatalf("bad pid in %q", rest)
	}
	deadline := time.Now().Add(15 * time.Second)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the helper (pid %d) still runs after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNFSAddrOption(t *testing.T) {
	for _, c := range []struct{ what, data, want string }{
		{"192.0.2.7:/export", "vers=4.2", "vers=4.2,addr=192.0.2.7"},
		{"[2001:db8::1]:/export", "", "addr=2001:db8::1"},
		{"server:/export", "addr=192.0.2.9,vers=3", "addr=192.0.2.9,vers=3"},
		{"localhost:/srv", "", "addr=127.0.0.1"},
	} {
		got, err := nfsAddrOption(c.what, c.data, 5*time.Second)
		if err != nil || got != c.want {
			t.Errorf("nfsAddrOption(%q, %q) = %q, %v; want %q", c.what, c.data, got, err, c.want)
		}
	}
	for _, bad := range []string{"/export", ":/export", "[::1/export", "a b:/x"} {
		if _, err := nfsAddrOption(bad, "", time.Second); err == nil {
			t.Errorf("nfsAddrOption(%q) accepted", bad)
		}
	}
	_, err := nfsAddrOption("vigil-no-such-host.invalid:/x", "", 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "set addr=") {
		t.Errorf("unknown host: %v", err)
	}
}

func FuzzPlanMount(f *testing.F) {
	f.Add("/srv/img.ext4", "ext4", "loop,ro,offset=1048576,sizelimit=0x100000,nofail")
	f.Add("server:/export", "nfs", "vers=4.2,_netdev,x-systemd.automount")
	f.Add("PARTUUID=0a1b2c3d-01", "", "defaults")
	f.Add("/src", "", "bind,loop")
	f.Fuzz(func(t *testing.T, what, fstype, options string) {
		req, err := planMount(&unitfile.MountSection{What: what, Where: "/mnt/x", FSType: fstype, Options: options})
		if err != nil {
			return
		}
		opts, _ := ParseMountOptions(options)
		for _, o := range splitOptions(req.helperOptions) {
			if o != "" && slices.Contains(opts.UserSpace, o) {
				t.Fatalf("helper gets the user-space option %q", o)
			}
		}
		if req.flags&unix.MS_BIND != 0 && req.loop {
			t.Fatal("bind and loop together")
		}
		if _, err := nfsHost(what); err == nil && what == "" {
			t.Fatal("empty NFS source accepted")
		}
	})
}
