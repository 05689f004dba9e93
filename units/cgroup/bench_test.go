package cgroup

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"vigil/units/unitfile"
)

// BenchmarkGroupLifecycle is what a service start and stop add in the
// kernel's cgroup files, without any process: create the group with its
// default settings, open it for clone3, remove it.
func BenchmarkGroupLifecycle(b *testing.B) {
	tree := testTree(b)
	settings, _ := Settings(&unitfile.ResourcesSection{}, ReadMachine())
	for i := 0; i < b.N; i++ {
		rel := "system.slice/u" + strconv.Itoa(i) + ".service"
		if _, err := tree.Apply(rel, settings, unitfile.Delegate{}); err != nil {
			b.Fatal(err)
		}
		fd, err := tree.OpenFD(rel)
		if err != nil {
			b.Fatal(err)
		}
		syscall.Close(fd)
		if err := tree.Remove(rel); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpawn compares fork/exec/wait of /bin/true born in a cgroup
// (clone3 CLONE_INTO_CGROUP) with a plain fork/exec.
func BenchmarkSpawn(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("into-cgroup", func(b *testing.B) {
		tree := testTree(b)
		if err := tree.Ensure("x.service"); err != nil {
			b.Fatal(err)
		}
		fd, err := tree.OpenFD("x.service")
		if err != nil {
			b.Fatal(err)
		}
		defer syscall.Close(fd)
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("/bin/true")
			cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
