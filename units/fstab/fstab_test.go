package fstab

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"vigil/units/unitfile"
)

const table = `# /etc/fstab
UUID=3E6F2A10-1111-4c2b-9a8e-0123456789ab /mnt/data ext4 defaults,nofail 0 2
LABEL=my\040disk /srv/media auto ro,noauto
/dev/vdc none swap sw,pri=5,discard 0 0
server:/export /net/export nfs _netdev,x-systemd.automount,x-systemd.idle-timeout=30s
/dev/vdd /mnt/late ext4 x-systemd.device-timeout=5s,x-systemd.requires=setup.service,x-systemd.requires=/mnt/data
tmpfs /tmp/x tmpfs size=1m
/dev/vda1 / ext4 defaults 0 1
this-line-is-bad
/dev/vde relative/path ext4 defaults
/dev/vdf /mnt/dup ext4 defaults
/dev/vdg /mnt/dup ext4 defaults
/dev/vdh /mnt/badopt ext4 x-systemd.device-timeout=soon
/dev/vdi /mnt/d ext4 defaults x 0
`

func generate(t *testing.T, diskDir string) (string, []error) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "fstab")
	os.WriteFile(src, []byte(table), 0o644)
	out := filepath.Join(dir, "gen")
	os.Mkdir(out, 0o755)
	return out, Generate(Options{Path: src, DiskDir: diskDir}, out)
}

func TestBadLinesAreNamedAndTheRestGenerated(t *testing.T) {
	out, errs := generate(t, "/dev/disk")
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"fstab:9: want at least a source", "fstab:10: mount point \"relative/path\" is not an absolute path",
		"fstab:12: /mnt/dup is already in", "fstab:13: option x-systemd.device-timeout=soon", "fstab:14: dump frequency \"x\""} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	if len(errs) != 5 {
		t.Errorf("%d errors, want 5:\n%s", len(errs), all)
	}
	for _, name := range []string{"mnt-data.mount", "srv-media.mount", "dev-vdc.swap", "net-export.mount", "net-export.automount",
		"mnt-late.mount", "tmp-x.mount", "mnt-dup.mount", "dev-vdd.device"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("%s not generated: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "-.mount")); err == nil {
		t.Error("the root got a unit")
	}
}

func TestGeneratedUnitsLoadWithTheirLinks(t *testing.T) {
	out, _ := generate(t, "/dev/disk")
	cfgs, problems := unitfile.Scan([]string{out}, unitfile.DefaultContext())
	for _, p := range problems {
		t.Errorf("load problem: %v", p)
	}
	data := cfgs["mnt-data.mount"]
	if data == nil || data.Mount == nil {
		t.Fatal("mnt-data.mount did not load")
	}
	if data.Mount.What != "/dev/disk/by-uuid/3e6f2a10-1111-4c2b-9a8e-0123456789ab" || data.Mount.FSType != "ext4" {
		t.Errorf("mnt-data.mount: %+v", data.Mount)
	}
	media := cfgs["srv-media.mount"]
	if media.Mount.What != `/dev/disk/by-label/my\x20disk` || media.Mount.FSType != "" || media.Mount.Options != "ro,noauto" {
		t.Errorf("srv-media.mount: %+v", media.Mount)
	}
	late := cfgs["mnt-late.mount"]
	if !contains(late.Unit.Requires, "setup.service") || !contains(late.Unit.Requires, "mnt-data.mount") || !contains(late.Unit.After, "mnt-data.mount") {
		t.Errorf("mnt-late.mount requires %v after %v", late.Unit.Requires, late.Unit.After)
	}
	if dev := cfgs["dev-vdd.device"]; dev == nil || dev.Unit.JobTimeout.Seconds() != 5 {
		t.Errorf("device timeout unit: %+v", dev)
	}
	swap := cfgs["dev-vdc.swap"]
	if swap == nil || swap.Swap == nil || swap.Swap.What != "/dev/vdc" || swap.Swap.Priority == nil || *swap.Swap.Priority != 5 {
		t.Fatalf("dev-vdc.swap: %+v", swap)
	}
	auto := cfgs["net-export.automount"]
	if auto == nil || auto.Automount.Where != "/net/export" || auto.Automount.TimeoutIdle.Seconds() != 30 {
		t.Errorf("automount: %+v", auto)
	}
	links := map[string]string{
		"local-fs.target.wants/mnt-data.mount":        "nofail: wanted",
		"local-fs.target.requires/mnt-late.mount":     "required",
		"local-fs.target.requires/tmp-x.mount":        "required",
		"swap.target.requires/dev-vdc.swap":           "swap",
		"remote-fs.target.wants/net-export.automount": "automount of a network mount",
	}
	for l, why := range links {
		if _, err := os.Stat(filepath.Join(out, l)); err != nil {
			t.Errorf("%s (%s): %v", l, why, err)
		}
	}
	for _, l := range []string{"local-fs.target.requires/srv-media.mount", "local-fs.target.wants/srv-media.mount", "remote-fs.target.requires/net-export.mount"} {
		if _, err := os.Lstat(filepath.Join(out, l)); err == nil {
			t.Errorf("%s exists (noauto or automounted)", l)
		}
	}
}

func TestUUIDResolvesThroughTheDiskDirectory(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "dev", "disk")
	os.MkdirAll(filepath.Join(disk, "by-uuid"), 0o755)
	uuid := "3e6f2a10-1111-4c2b-9a8e-0123456789ab"
	os.Symlink("../../vdb", filepath.Join(disk, "by-uuid", uuid))
	out, _ := generate(t, disk)
	data, err := os.ReadFile(filepath.Join(out, "mnt-data.mount"))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(disk, "by-uuid", uuid)
	if !strings.Contains(string(data), `what = "`+want+`"`) {
		t.Errorf("unit:\n%s\nwant what = %s", data, want)
	}
	if target, err := os.Readlink(want); err != nil || target != "../../vdb" {
		t.Errorf("the fake link is %q, %v", target, err)
	}
	for spec, want := range map[string]string{"PARTUUID=AB-01": "/d/by-partuuid/ab-01", "PARTLABEL=root": "/d/by-partlabel/root", "/dev/vdb": "/dev/vdb", "LABEL=a/b": `/d/by-label/a\x2fb`} {
		if got, err := ResolveSpec(spec, "/d"); err != nil || got != want {
			t.Errorf("ResolveSpec(%q) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if _, err := ResolveSpec("UUID=", "/d"); err == nil {
		t.Error("empty UUID= accepted")
	}
}

func TestMissingFstabIsNoError(t *testing.T) {
	if errs := Generate(Options{Path: filepath.Join(t.TempDir(), "none")}, t.TempDir()); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// FuzzParse: fstab is read at every boot. No input panics, every error
// names a line, and every parsed entry generates units that load.
func FuzzParse(f *testing.F) {
	f.Add(table)
	f.Add("UUID=x /a b c 0 0\n")
	f.Add("a b\n")
	f.Add("LABEL=\"q\" /\\134x auto x-systemd.requires=/y,x-systemd.automount\n")
	f.Fuzz(func(t *testing.T, text string) {
		// An input that takes this long is a hang: fail with every
		// stack, or the engine would only stop making progress.
		debug.SetTraceback("all")
		tm := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("slow input %q", text)) })
		defer tm.Stop()
		entries, errs := Parse(strings.NewReader(text), "fstab", "/dev/disk")
		for _, err := range errs {
			if !strings.HasPrefix(err.Error(), "fstab") {
				t.Fatalf("error without a position: %v", err)
			}
		}
		dir := t.TempDir()
		Write(entries, dir)
		// A fixed context: DefaultContext reads the host's user
		// database, host name and machine ID on every input.
		cfgs, _ := unitfile.Scan([]string{dir}, unitfile.Context{SkipExecCheck: true})
		for name, cfg := range cfgs {
			// Generated files must be valid TOML; what they say may
			// still be refused (a where that does not fit a unit
			// name), but never unparsable. (A unit with an error is
			// bad-setting, never loaded, and the loader says "invalid
			// TOML": the check once looked at loaded units for "toml"
			// and so could not fail.)
			for _, p := range cfg.Problems {
				if strings.Contains(p.Msg, "invalid TOML") {
					t.Fatalf("%s: %v\nfstab: %q", name, p, text)
				}
			}
		}
	})
}
