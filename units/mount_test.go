package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer/mountinfo"
	"vigil/units/api"
	"vigil/units/fstab"
	"vigil/units/unitfile"
)

// mountHarness is a manager following the real mount table, limited to
// the test's directory so the host's own mounts get no units (and the
// harness's clean-up never stops them).
type mountHarness struct {
	*harness
	watcher *mountinfo.Watcher
}

func newMountHarness(t *testing.T, files func(dir string) map[string]string, adjust func(*Options)) *mountHarness {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mount units need root")
	}
	probe := t.TempDir()
	if err := unix.Mount("vigil-probe", probe, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	unix.Unmount(probe, 0)
	h := newHarnessWith(t, nil, adjust)
	if files != nil {
		h.write(files(h.dir))
		h.do(func() { h.m.Reload() })
	}
	w, err := mountinfo.Watch(h.loop, mountinfo.Options{Under: h.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		// Anything a failed test left mounted under the directory.
		for i := 0; i < 4; i++ {
			ms, _ := mountinfo.Read(mountinfo.DefaultPath)
			for j := len(ms) - 1; j >= 0; j-- {
				if mountinfo.IsUnder(ms[j].MountPoint, h.dir) {
					unix.Unmount(ms[j].MountPoint, unix.MNT_DETACH)
				}
			}
		}
	})
	return &mountHarness{harness: h, watcher: w}
}

func mountName(t testing.TB, where string) string {
	t.Helper()
	name, err := unitfile.MountUnitName(where)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func isMounted(t testing.TB, where string) (mountinfo.Mount, bool) {
	t.Helper()
	ms, err := mountinfo.Read(mountinfo.DefaultPath)
	if err != nil {
		t.Fatal(err)
	}
	var found mountinfo.Mount
	ok := false
	for _, m := range ms {
		if m.MountPoint == where {
			found, ok = m, true
		}
	}
	return found, ok
}

func tmpfsUnit(where, options string) string {
	return "[mount]\nwhat = \"vigiltest\"\nwhere = \"" + where + "\"\ntype = \"tmpfs\"\noptions = \"" + options + "\"\n"
}

func TestMountUnitMountsAndUnmountsTmpfs(t *testing.T) {
	var where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "mnt", "data")
		name = mountName(t, where)
		return map[string]string{name: tmpfsUnit(where, "size=1m,nosuid,nodev,mode=0700,nofail,x-systemd.foo")}
	}, nil)
	if res, why := h.start(name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	if a, s := h.state(name); a != "active" || s != "mounted" {
		t.Fatalf("state %s/%s after start", a, s)
	}
	m, ok := isMounted(t, where)
	if !ok {
		t.Fatal("not in the mount table after a successful start")
	}
	if m.FSType != "tmpfs" || !strings.Contains(m.Options, "nosuid") || !strings.Contains(m.Options, "nodev") || !strings.Contains(m.SuperOptions, "mode=700") {
		t.Errorf("mounted as %+v", m)
	}
	if fi, err := os.Stat(filepath.Dir(where)); err != nil || !fi.IsDir() {
		t.Errorf("parent of the mount point was not created: %v", err)
	}
	// The unit sees the kernel's own account of the mount (the event may
	// come after the job finished).
	h.waitProp(name, "MountedType", "tmpfs")
	if res, why := h.stop(name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	if _, ok := isMounted(t, where); ok {
		t.Fatal("still mounted after stop")
	}
	if a, _ := h.state(name); a != "inactive" {
		t.Fatalf("state %s after stop", a)
	}
}

func TestBindMountReadOnly(t *testing.T) {
	var src, where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		src = filepath.Join(dir, "src")
		where = filepath.Join(dir, "ro")
		name = mountName(t, where)
		return map[string]string{name: "[mount]\nwhat = \"" + src + "\"\noptions = \"bind,ro\"\n"}
	}, nil)
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "known"), []byte("hello"), 0o644)
	if res, why := h.start(name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	if data, err := os.ReadFile(filepath.Join(where, "known")); err != nil || string(data) != "hello" {
		t.Fatalf("bind mount content %q, %v", data, err)
	}
	if err := os.WriteFile(filepath.Join(where, "new"), nil, 0o644); err == nil {
		t.Error("a read-only bind mount accepted a write")
	}
	h.stop(name)
}

func TestForeignMountGetsAUnitAndLosesIt(t *testing.T) {
	h := newMountHarness(t, nil, nil)
	where := filepath.Join(h.dir, "foreign")
	os.Mkdir(where, 0o755)
	name := mountName(t, where)
	if err := unix.Mount("someone", where, "tmpfs", unix.MS_NOEXEC, "size=64k"); err != nil {
		t.Fatal(err)
	}
	h.waitState(name, "active", 10*time.Second)
	if got := h.prop(name, "Foreign"); got != "true" {
		t.Errorf("Foreign = %q", got)
	}
	if got := h.prop(name, "What"); got != "someone" {
		t.Errorf("What = %q", got)
	}
	var listed bool
	h.do(func() {
		for _, s := range h.m.List(api.ListArgs{Types: []string{"mount"}}) {
			listed = listed || s.Name == name
		}
	})
	if !listed {
		t.Error("the foreign mount is not in list --type mount")
	}
	// A reload of the unit files keeps it: it has no file to lose.
	h.do(func() { h.m.Reload() })
	if a, _ := h.state(name); a != "active" {
		t.Fatalf("after reload: %s", a)
	}
	if err := unix.Unmount(where, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var gone bool
		h.do(func() { gone = h.m.Unit(name) == nil })
		if gone {
			break
		}
		if time.Now().After(deadline) {
			a, s := h.state(name)
			t.Fatalf("foreign unit still there (%s/%s) after the external umount", a, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExternalUmountMakesUnitInactive(t *testing.T) {
	var where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "ext")
		name = mountName(t, where)
		return map[string]string{name: tmpfsUnit(where, "size=64k")}
	}, nil)
	if res, why := h.start(name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	h.waitProp(name, "MountedType", "tmpfs")
	if err := unix.Unmount(where, 0); err != nil {
		t.Fatal(err)
	}
	h.waitState(name, "inactive", 10*time.Second)
	// Mounting it by hand again makes the unit active again.
	if err := unix.Mount("again", where, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	h.waitState(name, "active", 10*time.Second)
	if _, err := h.m.Unit(name), error(nil); err != nil {
		t.Fatal(err)
	}
	if h.prop(name, "Foreign") != "false" {
		t.Error("a unit with a file became foreign")
	}
}

func (h *mountHarness) waitProp(name, key, want string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.prop(name, key) != want {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s %s = %q, want %q", name, key, h.prop(name, key), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParentMountFirstChildUnmountedFirst(t *testing.T) {
	var parent, child, pname, cname string
	h := newMountHarness(t, func(dir string) map[string]string {
		parent = filepath.Join(dir, "p")
		child = filepath.Join(parent, "c")
		pname, cname = mountName(t, parent), mountName(t, child)
		return map[string]string{pname: tmpfsUnit(parent, "size=64k"), cname: tmpfsUnit(child, "size=64k")}
	}, nil)
	var requires, after []string
	h.do(func() {
		u := h.m.Unit(cname)
		requires, after = u.Deps(Requires), u.Deps(After)
	})
	if !contains(requires, pname) || !contains(after, pname) {
		t.Fatalf("child requires %v, after %v: want the parent %s in both", requires, after, pname)
	}
	if res, why := h.start(cname); res != api.ResultDone {
		t.Fatalf("start child: %s (%s)\n%s", res, why, h.logText())
	}
	pm, ok1 := isMounted(t, parent)
	cm, ok2 := isMounted(t, child)
	if !ok1 || !ok2 || cm.ParentID != pm.ID {
		t.Fatalf("parent mounted %v, child mounted %v on parent %d (parent id %d)", ok1, ok2, cm.ParentID, pm.ID)
	}
	// Stopping the parent stops the child first (it requires the parent),
	// or the parent's umount would be busy.
	if res, why := h.stop(pname); res != api.ResultDone {
		t.Fatalf("stop parent: %s (%s)\n%s", res, why, h.logText())
	}
	if _, ok := isMounted(t, child); ok {
		t.Error("child still mounted")
	}
	if _, ok := isMounted(t, parent); ok {
		t.Error("parent still mounted")
	}
	if a, _ := h.state(cname); a != "inactive" {
		t.Errorf("child %s", a)
	}
}

func TestMountPointThatIsAFileFails(t *testing.T) {
	var where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "file")
		name = mountName(t, where)
		return map[string]string{name: tmpfsUnit(where, "")}
	}, nil)
	os.WriteFile(where, []byte("x"), 0o644)
	res, why := h.start(name)
	if res != api.ResultFailed || !strings.Contains(why, "not a directory (it is a file)") {
		t.Fatalf("start: %s (%s), want failed naming the file", res, why)
	}
	if a, _ := h.state(name); a != "failed" {
		t.Errorf("state %s", a)
	}
	if _, ok := isMounted(t, where); ok {
		t.Error("mounted over a file")
	}
}

func TestUnknownFileSystemTypeFails(t *testing.T) {
	var where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "odd")
		name = mountName(t, where)
		return map[string]string{name: "[mount]\nwhat = \"x\"\ntype = \"nosuchfs\"\n"}
	}, nil)
	res, why := h.start(name)
	if res != api.ResultFailed || !strings.Contains(why, `unknown file system type "nosuchfs"`) {
		t.Fatalf("start: %s (%s)", res, why)
	}
	if a, _ := h.state(name); a != "failed" {
		t.Errorf("state %s", a)
	}
	if got := h.prop(name, "Result"); got != "exit-code" {
		t.Errorf("Result = %q", got)
	}
}

func TestWhereMismatchIsALoadError(t *testing.T) {
	h := newMountHarness(t, func(dir string) map[string]string {
		return map[string]string{"mnt-a.mount": "[mount]\nwhat = \"tmpfs\"\nwhere = \"/mnt/b\"\n"}
	}, nil)
	var load, why string
	h.do(func() {
		u, _ := h.m.LoadUnit("mnt-a.mount")
		load, why = u.LoadState, u.LoadError
	})
	if load != LoadBadSetting || !strings.Contains(why, "mnt-b.mount") || !strings.Contains(why, "mnt-a.mount:3") {
		t.Fatalf("load %s (%s)", load, why)
	}
}

// hangingMounts blocks every mount call until released.
type hangingMounts struct {
	release chan struct{}
	once    sync.Once
}

func (x *hangingMounts) Mount(string, string, string, uintptr, string) error {
	<-x.release
	return unix.ENODEV
}
func (x *hangingMounts) Unmount(string, int) error { return nil }
func (x *hangingMounts) free()                     { x.once.Do(func() { close(x.release) }) }

func TestHangingMountTimesOutWithoutBlockingTheLoop(t *testing.T) {
	var where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "slow")
		name = mountName(t, where)
		return map[string]string{name: tmpfsUnit(where, "") + "timeout = \"300ms\"\n"}
	}, nil)
	hang := &hangingMounts{release: make(chan struct{})}
	t.Cleanup(hang.free)
	h.do(func() { h.m.mounts.sys = hang })
	type outcome struct{ res, why string }
	done := make(chan outcome, 1)
	go func() { r, w := h.start(name); done <- outcome{r, w} }()
	// The loop keeps answering while the mount call hangs.
	for i := 0; i < 5; i++ {
		h.state(name)
	}
	select {
	case o := <-done:
		if o.res != api.ResultFailed || !strings.Contains(o.why, "timed out") {
			t.Fatalf("start: %s (%s)", o.res, o.why)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the start job did not end on the unit's timeout")
	}
	if got := h.prop(name, "Result"); got != "timeout" {
		t.Errorf("Result = %q", got)
	}
	// The late answer of the abandoned call changes nothing.
	hang.free()
	time.Sleep(50 * time.Millisecond)
	if a, _ := h.state(name); a != "failed" {
		t.Errorf("state %s after the abandoned call returned", a)
	}
}

// fakeMounts records mount calls and succeeds without mounting.
type fakeMounts struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeMounts) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.mu.Lock()
	f.calls = append(f.calls, source+" "+target)
	f.mu.Unlock()
	return nil
}
func (f *fakeMounts) Unmount(string, int) error { return nil }
func (f *fakeMounts) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func TestHotPluggedDeviceStartsWantedMountAndRemovalStopsIt(t *testing.T) {
	dir := t.TempDir()
	where := filepath.Join(dir, "usb")
	name := mountName(t, where)
	h := newDeviceHarness(t, map[string]string{
		name: "[mount]\nwhat = \"/dev/vdb\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\n[install]\nwanted-by = \"dev-vdb.device\"\n",
	}, DeviceOptions{})
	fake := &fakeMounts{}
	var binds []string
	h.do(func() {
		h.m.mounts.sys = fake
		u, _ := h.m.LoadUnit(name)
		binds = u.Deps(BindsTo)
	})
	if !contains(binds, "dev-vdb.device") {
		t.Fatalf("binds-to %v, want dev-vdb.device", binds)
	}
	h.post("add", vdbPath, vdbEnv()...)
	h.waitState(name, "active", 10*time.Second)
	if fake.count() != 1 {
		t.Fatalf("%d mount calls, want 1", fake.count())
	}
	h.post("remove", vdbPath, vdbEnv()...)
	h.waitState(name, "inactive", 10*time.Second)
	// Plugged again, mounted again.
	h.post("add", vdbPath, vdbEnv()...)
	h.waitState(name, "active", 10*time.Second)
	if fake.count() != 2 {
		t.Errorf("%d mount calls after the second plug, want 2", fake.count())
	}
}

func TestNofailMountWaitsForItsDeviceThroughTheTarget(t *testing.T) {
	dir := t.TempDir()
	where := filepath.Join(dir, "late")
	name := mountName(t, where)
	h := newDeviceHarness(t, map[string]string{
		name:             "[mount]\nwhat = \"/dev/vdb\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\n",
		"data.target":    "[unit]\nwants = \"" + name + "\"\n",
		"dev-vdb.device": "[unit]\njob-timeout = \"200ms\"\n",
	}, DeviceOptions{})
	fake := &fakeMounts{}
	h.do(func() { h.m.mounts.sys = fake })
	// At "boot" the device is missing: the mount's start waits for it and
	// fails with the device's timeout; the target (which only wants it)
	// is reached.
	if res, why := h.start("data.target"); res != api.ResultDone {
		t.Fatalf("data.target: %s (%s)", res, why)
	}
	if a, _ := h.state(name); a == "active" {
		t.Fatal("mounted without its device")
	}
	h.post("add", vdbPath, vdbEnv()...)
	h.waitState(name, "active", 10*time.Second)
}

func TestParseMountOptions(t *testing.T) {
	o, err := ParseMountOptions(`ro,nosuid,nodev,noexec,relatime,size=10m,nofail,_netdev,x-systemd.automount,context="a,b",rshared,defaults`)
	if err != nil {
		t.Fatal(err)
	}
	want := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME)
	if o.Flags != want {
		t.Errorf("flags %#x, want %#x", o.Flags, want)
	}
	if strings.Join(o.Data, ",") != `size=10m,context="a,b"` {
		t.Errorf("data %q", o.Data)
	}
	if o.Propagation != unix.MS_SHARED|unix.MS_REC {
		t.Errorf("propagation %#x", o.Propagation)
	}
	if strings.Join(o.UserSpace, ",") != "nofail,_netdev,x-systemd.automount,defaults" {
		t.Errorf("user-space options %q", o.UserSpace)
	}
	if o, _ := ParseMountOptions("ro,rw,exec"); o.Flags != 0 {
		t.Errorf("later options do not undo earlier ones: %#x", o.Flags)
	}
	if _, err := ParseMountOptions("move"); err == nil {
		t.Error("move accepted")
	}
	if o, _ := ParseMountOptions("loop,offset=512"); !o.Loop {
		t.Error("loop not flagged")
	}
}

// FuzzParseMountOptions: options come from unit files and /etc/fstab. No
// input panics; flags set and cleared by the same option never both show.
func FuzzParseMountOptions(f *testing.F) {
	for _, s := range []string{"", "defaults", "ro,nosuid,size=1m", `context="a,b",ro`, `"`, ",,,", "rbind,rprivate", "\x00", "x-systemd.device-timeout=5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseMountOptions(s)
		if err != nil {
			return
		}
		for _, d := range o.Data {
			if strings.ContainsRune(d, 0) {
				t.Fatalf("NUL in data %q", d)
			}
		}
		for _, opt := range splitOptions(s) {
			if opt == "rw" && !strings.Contains(s, "ro") && o.Flags&unix.MS_RDONLY != 0 {
				t.Fatalf("rw gave read-only: %q", s)
			}
		}
	})
}

func TestSwapFlags(t *testing.T) {
	five := 5
	cases := []struct {
		prio *int
		opts string
		want int
		bad  bool
	}{
		{nil, "", 0, false},
		{&five, "discard", swapFlagPrefer | 5 | swapFlagDiscard, false},
		{nil, "pri=7,discard=once,nofail", swapFlagPrefer | 7 | swapFlagDiscard | swapFlagDiscardOnce, false},
		{&five, "pri=7", swapFlagPrefer | 5, false},
		{nil, "pri=x", 0, true},
		{nil, "discard=never", 0, true},
	}
	for _, c := range cases {
		got, err := SwapFlags(c.prio, c.opts)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("SwapFlags(%v, %q) = %#x, %v; want %#x (error %v)", c.prio, c.opts, got, err, c.want, c.bad)
		}
	}
}

func TestFstabGeneratorUnitsLoadAndFollowReloads(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "fstab")
	os.WriteFile(table, []byte("tmpfs /mnt/gen-a tmpfs size=1m\nbad\n"), 0o644)
	h := newHarnessWith(t, nil, func(o *Options) {
		o.Generators = []Generator{fstab.Generator(fstab.Options{Path: table})}
	})
	var load string
	var problems []string
	var reqBy []string
	h.do(func() {
		u, _ := h.m.LoadUnit("mnt-gen\\x2da.mount")
		load = u.LoadState
		reqBy = u.Deps(RequiredBy)
		problems = h.m.Problems()
	})
	if load != LoadLoaded {
		out, _ := exec.Command("find", h.dir+"/run").CombinedOutput()
		t.Fatalf("generated unit %s\n%s\nlog:\n%s", load, out, h.logText())
	}
	if !contains(reqBy, "local-fs.target") {
		t.Errorf("required by %v, want local-fs.target", reqBy)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], table+":2:") {
		t.Errorf("problems %q, want one naming %s:2", problems, table)
	}
	// A reload regenerates: an entry removed from the table loses its unit.
	os.WriteFile(table, []byte("tmpfs /mnt/gen-b tmpfs size=1m\n"), 0o644)
	var res api.ReloadResult
	h.do(func() { res = h.m.Reload() })
	if !contains(res.Added, "mnt-gen\\x2db.mount") || !contains(res.Removed, "mnt-gen\\x2da.mount") {
		t.Errorf("reload added %v, removed %v", res.Added, res.Removed)
	}
}

func TestMountUnitWhoseFileWentAwayStillFollowsTheTable(t *testing.T) {
	var where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		where = filepath.Join(dir, "gone")
		name = mountName(t, where)
		return map[string]string{name: tmpfsUnit(where, "size=64k")}
	}, nil)
	if res, why := h.start(name); res != api.ResultDone {
		t.Fatalf("start: %s (%s)", res, why)
	}
	os.Remove(filepath.Join(h.units, name))
	h.do(func() { h.m.Reload() })
	if got := h.prop(name, "Where"); got != where {
		t.Errorf("Where = %q after the file went away", got)
	}
	if res, why := h.stop(name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	if _, ok := isMounted(t, where); ok {
		t.Error("still mounted")
	}
}
