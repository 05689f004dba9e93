package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
	"vigil/units/loopdev"
)

// makeExt4File makes an ext4 image file holding hello.txt, preceded by
// pad bytes of zeros.
func makeExt4File(t *testing.T, path, content string, pad int) {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	img := path + ".fs"
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", src, img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	fs, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(img)
	if err := os.WriteFile(path, append(make([]byte, pad), fs...), 0o644); err != nil {
		t.Fatal(err)
	}
}

func needLoopDevices(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(loopdev.ControlPath); err != nil {
		t.Skipf("no loop driver: %v", err)
	}
}

// waitLoopGone waits until the loop device has no backing file.
func waitLoopGone(t *testing.T, dev string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for loopdev.BackingFile("/sys", dev) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("%s still attached to %s after the unmount", dev, loopdev.BackingFile("/sys", dev))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoopMountOfAnImageFile mounts an ext4 image file named as what,
// once with no option (mount(8) loops a file by itself) and type probed,
// once with loop,ro,offset= from an fstab-style line; each mounts through
// a loop device backed by the file, and the device goes at unmount.
func TestLoopMountOfAnImageFile(t *testing.T) {
	needLoopDevices(t)
	var plainImg, offsetImg, plainWhere, offsetWhere, plain, offset string
	h := newMountHarness(t, func(dir string) map[string]string {
		plainImg, offsetImg = filepath.Join(dir, "plain.ext4"), filepath.Join(dir, "offset.img")
		makeExt4File(t, plainImg, "plain image", 0)
		makeExt4File(t, offsetImg, "offset image", 1<<20)
		plainWhere, offsetWhere = filepath.Join(dir, "mnt", "plain"), filepath.Join(dir, "mnt", "offset")
		plain, offset = mountName(t, plainWhere), mountName(t, offsetWhere)
		return map[string]string{
			plain:  "[mount]\nwhat = \"" + plainImg + "\"\nwhere = \"" + plainWhere + "\"\n",
			offset: "[mount]\nwhat = \"" + offsetImg + "\"\nwhere = \"" + offsetWhere + "\"\ntype = \"ext4\"\noptions = \"loop,ro,offset=1048576,nofail\"\n",
		}
	}, nil)
	for _, c := range []struct{ name, img, where, content string }{
		{plain, plainImg, plainWhere, "plain image"},
		{offset, offsetImg, offsetWhere, "offset image"},
	} {
		if res, why := h.start(c.name); res != api.ResultDone {
			t.Fatalf("start %s: %s (%s)\n%s", c.name, res, why, h.logText())
		}
		m, ok := isMounted(t, c.where)
		if !ok {
			t.Fatalf("%s: not mounted", c.where)
		}
		if !strings.HasPrefix(m.Source, "/dev/loop") || m.FSType != "ext4" {
			t.Fatalf("%s mounted from %s (%s), want a loop device with ext4", c.where, m.Source, m.FSType)
		}
		if got := loopdev.BackingFile("/sys", m.Source); got != c.img {
			t.Errorf("%s is backed by %q, want %q", m.Source, got, c.img)
		}
		if b, err := os.ReadFile(filepath.Join(c.where, "hello.txt")); err != nil || string(b) != c.content {
			t.Errorf("hello.txt = %q, %v", b, err)
		}
		if c.name == offset && !strings.Contains(","+m.Options+",", ",ro,") {
			t.Errorf("ro loop mount has options %s", m.Options)
		}
		if res, why := h.stop(c.name); res != api.ResultDone {
			t.Fatalf("stop %s: %s (%s)", c.name, res, why)
		}
		waitLoopGone(t, m.Source)
	}
}

// TestLoopMountFailureFreesTheDevice: an image that holds no file system
// fails the unit with the kernel's reason and leaves no loop device.
func TestLoopMountFailureFreesTheDevice(t *testing.T) {
	needLoopDevices(t)
	var img, where, name string
	h := newMountHarness(t, func(dir string) map[string]string {
		img = filepath.Join(dir, "zero.img")
		os.WriteFile(img, make([]byte, 1<<20), 0o644)
		where = filepath.Join(dir, "mnt", "zero")
		name = mountName(t, where)
		return map[string]string{name: "[mount]\nwhat = \"" + img + "\"\nwhere = \"" + where + "\"\ntype = \"ext4\"\noptions = \"loop\"\n"}
	}, nil)
	if res, _ := h.start(name); res != api.ResultFailed {
		t.Fatalf("start of a zeroed image: %s, want failed", res)
	}
	if st := h.prop(name, "Result"); st != "exit-code" {
		t.Errorf("Result = %s", st)
	}
	// No loop device is left backed by the image.
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := ""
		matches, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, m := range matches {
			if b, _ := os.ReadFile(m); strings.TrimSpace(string(b)) == img {
				left = m
			}
		}
		if left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still names the image after the failed mount", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMountOfAFileRequiresTheMountHoldingIt: a mount unit whose what is
// a file below another unit's mount point requires and follows it.
func TestMountOfAFileRequiresTheMountHoldingIt(t *testing.T) {
	var outer, inner string
	h := newMountHarness(t, func(dir string) map[string]string {
		outerWhere := filepath.Join(dir, "srv")
		outer = mountName(t, outerWhere)
		inner = mountName(t, filepath.Join(dir, "mnt", "img"))
		return map[string]string{
			outer: tmpfsUnit(outerWhere, "size=8m"),
			inner: "[mount]\nwhat = \"" + filepath.Join(outerWhere, "images", "a.ext4") + "\"\nwhere = \"" + filepath.Join(dir, "mnt", "img") + "\"\n",
		}
	}, nil)
	var requires, after []string
	h.do(func() {
		u := h.m.Unit(inner)
		requires, after = u.Deps(Requires), u.Deps(After)
	})
	if !slices.Contains(requires, outer) || !slices.Contains(after, outer) {
		t.Fatalf("%s: requires %v, after %v; want %s in both", inner, requires, after, outer)
	}
}

func TestResolveWhat(t *testing.T) {
	for in, want := range map[string]string{
		"PARTUUID=0A1B2C3D-01": "/dev/disk/by-partuuid/0a1b2c3d-01",
		"PARTLABEL=my part":    `/dev/disk/by-partlabel/my\x20part`,
		"UUID=ABCD-1234":       "/dev/disk/by-uuid/abcd-1234",
		"LABEL=data":           "/dev/disk/by-label/data",
		"/srv/img.ext4":        "/srv/img.ext4",
		"server:/export":       "server:/export",
		"tmpfs":                "tmpfs",
		"PARTUUID=":            "PARTUUID=",
		"OTHER=x":              "OTHER=x",
	} {
		if got := resolveWhat(in); got != want {
			t.Errorf("resolveWhat(%q) = %q, want %q", in, got, want)
		}
	}
}
