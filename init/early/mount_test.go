package early

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/init/shutdown"
)

type mountReport struct {
	// Mounts maps a path relative to root to "fstype options superoptions".
	Mounts       map[string]string
	Errors       []string
	SecondErrors []string
	SecondCount  int
	Links        map[string]string
	RunSystemd   bool
}

func mountsUnder(root string) (map[string]string, error) {
	mounts, err := shutdown.ReadMountinfo(shutdown.DefaultMountinfo)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for _, m := range mounts {
		if rel, ok := strings.CutPrefix(m.MountPoint, root); ok && (rel == "" || rel[0] == '/') {
			out[rel] = m.FSType + " " + m.Options + " " + m.SuperOptions
		}
	}
	return out, nil
}

func helperMount(root string, container bool) (any, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, err
	}
	_, coreExisted := os.Lstat("/dev/core")
	var rep mountReport
	for _, err := range MountAPI(root, MountOptions{Container: container}) {
		rep.Errors = append(rep.Errors, err.Error())
	}
	var err error
	if rep.Mounts, err = mountsUnder(root); err != nil {
		return nil, err
	}
	for _, err := range MountAPI(root, MountOptions{Container: container}) {
		rep.SecondErrors = append(rep.SecondErrors, err.Error())
	}
	second, _ := mountsUnder(root)
	rep.SecondCount = len(second)
	rep.Links = map[string]string{}
	for _, l := range []string{"fd", "stdin", "stdout", "stderr", "core"} {
		target, _ := os.Readlink(filepath.Join(root, "dev", l))
		rep.Links[l] = target
	}
	// root/dev is the host's devtmpfs instance: leave it as we found it.
	if coreExisted != nil && !container {
		os.Remove(filepath.Join(root, "dev/core"))
	}
	if err := CreateRunSystemd(root); err != nil {
		return nil, err
	}
	_, err = os.Stat(filepath.Join(root, "run/systemd/system"))
	rep.RunSystemd = err == nil
	return rep, nil
}

func hasOpt(s, opt string) bool {
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		if f == opt {
			return true
		}
	}
	return false
}

func TestMountAPIInPrivateNamespace(t *testing.T) {
	root := t.TempDir()
	var rep mountReport
	// A new cgroup namespace keeps the cgroup2 mount options from
	// reaching the host's cgroup2 superblock.
	runInHelper(t, "mount", root, syscall.CLONE_NEWNS|syscall.CLONE_NEWCGROUP, &rep)
	t.Logf("mounts: %v", rep.Mounts)
	if len(rep.Errors) != 0 {
		t.Errorf("MountAPI errors: %v", rep.Errors)
	}
	want := map[string][]string{
		"/proc":                {"proc", "nosuid", "nodev", "noexec"},
		"/sys":                 {"sysfs", "nosuid", "nodev", "noexec"},
		"/dev":                 {"devtmpfs", "nosuid"},
		"/dev/shm":             {"tmpfs", "nosuid", "nodev"},
		"/dev/pts":             {"devpts", "nosuid", "noexec", "mode=620", "gid=5", "ptmxmode=000"},
		"/run":                 {"tmpfs", "nosuid", "nodev", "mode=755"},
		"/sys/fs/cgroup":       {"cgroup2", "nosuid", "nodev", "noexec"},
		"/sys/kernel/security": {"securityfs"},
		"/sys/kernel/debug":    {"debugfs"},
	}
	for path, opts := range want {
		got, ok := rep.Mounts[path]
		if !ok {
			t.Errorf("%s not mounted", path)
			continue
		}
		if !strings.HasPrefix(got, opts[0]+" ") {
			t.Errorf("%s: %q, want type %s", path, got, opts[0])
		}
		for _, o := range opts[1:] {
			if !hasOpt(got, o) {
				t.Errorf("%s: %q lacks %s", path, got, o)
			}
		}
	}
	if len(rep.SecondErrors) != 0 || rep.SecondCount != len(rep.Mounts) {
		t.Errorf("second MountAPI: errors %v, %d mounts (want %d: nothing new)", rep.SecondErrors, rep.SecondCount, len(rep.Mounts))
	}
	for link, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if rep.Links[link] != target {
			t.Errorf("/dev/%s -> %q, want %q", link, rep.Links[link], target)
		}
	}
	if !rep.RunSystemd {
		t.Error("run/systemd/system not created")
	}
	// None of it reached the host.
	host, err := mountsUnder(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(host) != 0 {
		t.Errorf("mounts leaked to the host: %v", host)
	}
}

func TestMountAPIContainerMode(t *testing.T) {
	root := t.TempDir()
	var rep mountReport
	runInHelper(t, "mount-container", root, syscall.CLONE_NEWNS|syscall.CLONE_NEWCGROUP, &rep)
	if len(rep.Errors) != 0 {
		t.Errorf("MountAPI errors: %v", rep.Errors)
	}
	if got := rep.Mounts["/dev"]; !strings.HasPrefix(got, "tmpfs ") {
		t.Errorf("container /dev = %q, want tmpfs", got)
	}
	for _, skipped := range []string{"/sys/kernel/security", "/sys/kernel/debug"} {
		if _, ok := rep.Mounts[skipped]; ok {
			t.Errorf("%s mounted in container mode", skipped)
		}
	}
	if rep.Links["stdin"] != "/proc/self/fd/0" || rep.Links["core"] != "" && rep.Links["core"] != "/proc/kcore" {
		t.Errorf("links: %v", rep.Links)
	}
}

func TestCreateRunSystemd(t *testing.T) {
	root := t.TempDir()
	if err := CreateRunSystemd(root); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run/systemd/system", "run/vigil"} {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "blocker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CreateRunSystemd(filepath.Join(root, "blocker")); err == nil {
		t.Error("no error under a file")
	}
}
