package devnode

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/observer/uevent"
	"vigil/observer/uevent/blkid"
)

func TestEncodeName(t *testing.T) {
	for in, want := range map[string]string{
		"my disk":     `my\x20disk`,
		"a/b":         `a\x2fb`,
		`back\slash`:  `back\x5cslash`,
		"1234-ABCD":   "1234-ABCD",
		"ok#+-.:=@_":  "ok#+-.:=@_",
		"über":        "über",
		"bad\xffutf8": `bad\xffutf8`,
		"":            "",
	} {
		if got := EncodeName(in); got != want {
			t.Errorf("EncodeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The encoding agrees with what blkid tells udev (ID_FS_LABEL_ENC).
func TestEncodeNameAgainstBlkid(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	os.WriteFile(img, nil, 0o600)
	os.Truncate(img, 4<<20)
	label := `a b/c\d#é`
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", label, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	out, err := exec.Command("blkid", "-p", "-o", "udev", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var enc string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "ID_FS_LABEL_ENC="); ok {
			enc = v
		}
	}
	if got := EncodeName(label); got != enc {
		t.Errorf("EncodeName(%q) = %q, blkid says %q", label, got, enc)
	}
}

func readLink(t *testing.T, path string) string {
	t.Helper()
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// The whole path of a new file system: mkfs, probe, links under a
// temporary root; a relabel moves the label link, a removal prunes all.
func TestLinksFromRealImage(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	root := t.TempDir()
	img := filepath.Join(t.TempDir(), "vdb.img")
	os.WriteFile(img, nil, 0o600)
	os.Truncate(img, 8<<20)
	const uuid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-U", uuid, "-L", "data disk", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	probe := func() blkid.Identity {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		id, err := blkid.ProbeIdentity(f)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	links := Links("/dev/vdb", probe())
	if len(links) != 2 {
		t.Fatalf("links %+v", links)
	}
	// An unrelated device's link must survive everything below.
	other := Links("/dev/vdc", blkid.Identity{Type: "ext4", UUID: "ffffffff-0000-4000-8000-000000000000"})
	if err := Apply(root, append(links, other...)); err != nil {
		t.Fatal(err)
	}
	if got := readLink(t, root+"/dev/disk/by-uuid/"+uuid); got != "../../vdb" {
		t.Errorf("by-uuid -> %q", got)
	}
	if got := readLink(t, root+`/dev/disk/by-label/data\x20disk`); got != "../../vdb" {
		t.Errorf("by-label -> %q", got)
	}
	// Applying again is harmless.
	if err := Apply(root, links); err != nil {
		t.Fatal(err)
	}

	if out, err := exec.Command("e2label", img, "renamed").CombinedOutput(); err != nil {
		t.Fatalf("e2label: %v %s", err, out)
	}
	links = Links("/dev/vdb", probe())
	if err := Apply(root, links); err != nil {
		t.Fatal(err)
	}
	if err := Prune(root, "/dev/vdb", links); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(root + `/dev/disk/by-label/data\x20disk`); !os.IsNotExist(err) {
		t.Errorf("old label link survived: %v", err)
	}
	if got := readLink(t, root+"/dev/disk/by-label/renamed"); got != "../../vdb" {
		t.Errorf("new label -> %q", got)
	}

	if err := Prune(root, "/dev/vdb", nil); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if _, err := os.Lstat(root + l.Path); !os.IsNotExist(err) {
			t.Errorf("%s survived removal: %v", l.Path, err)
		}
	}
	if got := readLink(t, root+other[0].Path); got != "../../vdc" {
		t.Errorf("other device's link: %q", got)
	}
}

func TestApplyRefuses(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(root+"/dev/disk/by-uuid/in-the-way", 0o755)
	if err := Apply(root, []Link{{Path: "/dev/disk/by-uuid/in-the-way", Target: "/dev/vda"}}); err == nil {
		t.Error("replaced a directory")
	}
	for _, l := range []Link{{"/dev/disk/../../etc/x", "/dev/vda"}, {"dev/disk/x", "/dev/vda"}, {"/dev/disk/x", "vda"}} {
		if err := Apply(root, []Link{l}); err == nil {
			t.Errorf("accepted %+v", l)
		}
	}
}

func writeRules(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "devices.toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesErrorsHaveLines(t *testing.T) {
	tests := []struct{ src, want string }{
		{"[[rule]]\nsubsystem = \"block\"\nmode = \"0660\n", "devices.toml:3:"},
		{"[[rule]]\nsubsystem = \"block\"\ngroup = \"disk\"\n\n[[rule]]\ndevname = \"vd*\"\nmode = 660\n", "devices.toml:7: mode must be an octal string"},
		{"[[rule]]\nsubsystem = \"block\"\nmode = \"0999\"\n", "devices.toml:3: mode \"0999\""},
		{"[[rule]]\nsubsystem = \"block\"\ncolour = \"red\"\nmode = \"0600\"\n", "devices.toml:3: unknown key \"rule.colour\""},
		{"[[rule]]\nmode = \"0600\"\n", "devices.toml:1: rule matches nothing"},
		{"[[rule]]\nsubsystem = \"tty\"\n", "devices.toml:1: rule sets nothing"},
		{"\n\n[[rule]]\nsubsystem = \"block\"\ngroup = \"no-such-group-vigil\"\n", "devices.toml:5: group:"},
		{"[[rule]]\nsubsystem = \"[\"\nmode = \"0600\"\n", "devices.toml:2: subsystem \"[\""},
		{"[[rule]]\ndevname = \"x\"\nowner = -5\n", "devices.toml:3: owner: id -5 out of range"},
		{"junk = 1\n", "unknown key \"junk\""},
	}
	for _, tt := range tests {
		_, err := LoadRules(writeRules(t, tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.src, err, tt.want)
		}
	}
	if _, err := LoadRules(filepath.Join(t.TempDir(), "absent.toml")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// Rules applied to real device nodes (made with mknod) under a temporary
// root: later rules override earlier ones, unmatched nodes are untouched.
func TestRulesApplyOnNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod and chown need root")
	}
	rules, err := LoadRules(writeRules(t, `
# block devices belong to the disk group
[[rule]]
subsystem = "block"
group = "disk"
mode = "0660"

[[rule]]
subsystem = "block"
devname = "vd*"
devtype = "partition"
owner = 65534
mode = "0640"

[[rule]]
devname = "input/event*"
group = 0
mode = "0600"
`))
	if err != nil {
		t.Fatal(err)
	}
	diskGID := lookupGroup(t, "disk")
	root := t.TempDir()
	mk := func(name string, major, minor uint32) string {
		p := filepath.Join(root, "dev", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vda, vda1, sr0 := mk("vda", 254, 0), mk("vda1", 254, 1), mk("sr0", 11, 0)
	event := mk("input/event0", 13, 64)
	check := func(path string, uid, gid int, perm os.FileMode) {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != uid || int(st.Gid) != gid || os.FileMode(st.Mode&0o7777) != perm {
			t.Errorf("%s: uid %d gid %d mode %o; want %d %d %o", path, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, perm)
		}
	}
	apply := func(ev *uevent.Uevent) {
		t.Helper()
		if err := rules.Apply(ev, root); err != nil {
			t.Fatal(err)
		}
	}
	apply(&uevent.Uevent{Action: "add", Subsystem: "block", DevType: "disk", DevName: "vda"})
	apply(&uevent.Uevent{Action: "add", Subsystem: "block", DevType: "partition", DevName: "vda1"})
	apply(&uevent.Uevent{Action: "add", Subsystem: "input", DevName: "input/event0"})
	apply(&uevent.Uevent{Action: "remove", Subsystem: "block", DevName: "sr0"})
	apply(&uevent.Uevent{Action: "add", Subsystem: "net"}) // no node: nothing to do
	check(vda, 0, diskGID, 0o660)
	check(vda1, 65534, diskGID, 0o640)
	check(event, 0, 0, 0o600)
	check(sr0, 0, 0, 0o600) // remove events change nothing
	// A symlink in the node's place is refused, not followed.
	os.Symlink(vda, filepath.Join(root, "dev", "vdz"))
	if err := rules.Apply(&uevent.Uevent{Action: "add", Subsystem: "block", DevName: "vdz"}, root); err == nil {
		t.Error("followed a symlink")
	}
}

func lookupGroup(t *testing.T, name string) int {
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Skipf("no group %s: %v", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

func FuzzParseRules(f *testing.F) {
	f.Add([]byte("[[rule]]\nsubsystem = \"block\"\ngroup = \"disk\"\nmode = \"0660\"\n"))
	f.Add([]byte("[[rule]]\ndevname = \"input/*\"\nowner = 0\nmode = \"0600\"\n[[rule]]\nsubsystem=\"x\"\nmode=1\n"))
	f.Add([]byte("[[ rule ]]\n'subsystem' = '['\n"))
	f.Add([]byte("rule = [{subsystem = \"a\", mode = \"7777\"}]"))
	f.Add([]byte("[[rule]]\n[rule.x]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := ParseRules("fuzz.toml", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, r := range rs.rules {
			if r.mode&^(0o777|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
				t.Fatalf("mode %v", r.mode)
			}
		}
		rs.Apply(&uevent.Uevent{Action: "add", Subsystem: "block", DevName: "vda"}, t.TempDir())
	})
}
