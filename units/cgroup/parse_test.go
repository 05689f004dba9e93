package cgroup

import (
	"strings"
	"testing"
)

func TestParseKeyed(t *testing.T) {
	got := ParseKeyed("populated 1\nfrozen 0\n")
	if got["populated"] != 1 || got["frozen"] != 0 || len(got) != 2 {
		t.Fatalf("%v", got)
	}
	got = ParseKeyed("low 0\nhigh 3\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\nbad line here\n\nneg -1\n")
	if got["oom_kill"] != 1 || got["max"] != 7 || len(got) != 6 {
		t.Fatalf("%v", got)
	}
}

func TestCgroupOfProc(t *testing.T) {
	p, err := CgroupOfProc("12:pids:/x\n0::/system.slice/foo.service\n")
	if err != nil || p != "/system.slice/foo.service" {
		t.Fatalf("%q %v", p, err)
	}
	if _, err := CgroupOfProc("1:name=systemd:/\n"); err == nil {
		t.Fatal("no 0:: line accepted")
	}
	if _, err := CgroupOfProc("0::relative\n"); err == nil {
		t.Fatal("relative path accepted")
	}
}

func TestCgroup2Mount(t *testing.T) {
	hybrid := `25 31 0:22 / /sys rw,nosuid - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
`
	if m, err := Cgroup2Mount(hybrid); err != nil || m != "/sys/fs/cgroup/unified" {
		t.Fatalf("%q %v", m, err)
	}
	pure := "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
	if m, err := Cgroup2Mount(pure); err != nil || m != "/sys/fs/cgroup" {
		t.Fatalf("%q %v", m, err)
	}
	escaped := "35 24 0:30 / /mnt/my\\040cg rw - cgroup2 none rw\n"
	if m, err := Cgroup2Mount(escaped); err != nil || m != "/mnt/my cg" {
		t.Fatalf("%q %v", m, err)
	}
	// A bind mount of a subtree is not the hierarchy's root.
	if _, err := Cgroup2Mount("35 24 0:30 /sub /mnt rw - cgroup2 none rw\n"); err == nil {
		t.Fatal("subtree bind mount taken as the root")
	}
}

func TestParseIOStat(t *testing.T) {
	r, w := ParseIOStat("254:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n8:0 rbytes=100 wbytes=0\n")
	if r != 4196 || w != 512 {
		t.Fatalf("%d %d", r, w)
	}
}

// The parsers read kernel files and /proc; they must never panic, and
// what they return must be consistent with their input.
func FuzzParseKeyed(f *testing.F) {
	for _, s := range []string{"populated 1\nfrozen 0\n", "oom_kill 18446744073709551615\n", " \n\x00 1", "a b c\n", "usage_usec 12 34\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k := range ParseKeyed(s) {
			if k == "" || !strings.Contains(s, k) {
				t.Fatalf("key %q not in input", k)
			}
		}
		ParseIOStat(s)
		parseUintOrMax(s)
	})
}

func FuzzCgroup2Mount(f *testing.F) {
	f.Add("31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n")
	f.Add("1 2 3 / /a\\\\b\\0 - cgroup2\n")
	f.Add("0::/x\n")
	f.Fuzz(func(t *testing.T, s string) {
		Cgroup2Mount(s)
		if p, err := CgroupOfProc(s); err == nil && !strings.HasPrefix(p, "/") {
			t.Fatalf("relative path %q", p)
		}
	})
}
