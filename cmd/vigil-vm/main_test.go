package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vigil/initramfs"
	"vigil/qemu"
)

// testInit builds the qemu package's stand-in init, used here as both
// --vigil and --initctl.
func testInit(t *testing.T) string {
	t.Helper()
	root, err := initramfs.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "testinit")
	if err := initramfs.BuildGoProgram(context.Background(), root, "./qemu/testdata/testinit", bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestBuildCommandIsReproducible(t *testing.T) {
	if _, err := qemu.FindKernel("/boot"); err != nil {
		t.Skipf("no kernel to take modules from: %v", err)
	}
	bin := testInit(t)
	dir := t.TempDir()
	var sums [2][]byte
	for i := range sums {
		out := filepath.Join(dir, "image.cpio")
		var stderr bytes.Buffer
		if rc := run([]string{"build", "--vigil", bin, "--initctl", bin, "--add", "/usr/bin/env", "-o", out}, &bytes.Buffer{}, &stderr); rc != 0 {
			t.Fatalf("build: status %d: %s", rc, stderr.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = data
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Fatal("two builds differ")
	}
	entries, err := initramfs.ReadArchive(bytes.NewReader(sums[0]))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	for _, want := range []string{"init", "sbin/initctl", "usr/bin/env", "etc/vigil/units/console-shell.service", "etc/modules-load.d/vigil-vm.conf"} {
		if !names[want] {
			t.Errorf("image lacks %s", want)
		}
	}
}

func TestBadInvocations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"run"}, 2, "--script"},
		{[]string{"build", "--compress", "lz4"}, 2, "unknown compression"},
		{[]string{"run", "--script", "/no/such/script"}, 1, "/no/such/script"},
		{[]string{"build", "--kernel", "/no/such/vmlinuz", "--vigil", "/bin/true", "--initctl", "/bin/true"}, 1, "/no/such/vmlinuz"},
		{[]string{"run", "--script", "/etc/hostname", "--kernel", "/no/such/vmlinuz", "--vigil", "/bin/true", "--initctl", "/bin/true"}, 125, "/no/such/vmlinuz"},
	} {
		var stdout, stderr bytes.Buffer
		rc := run(tc.args, &stdout, &stderr)
		if rc != tc.rc || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("vigil-vm %q: status %d, stderr %q; want %d and %q", tc.args, rc, stderr.String(), tc.rc, tc.msg)
		}
	}
	t.Setenv("PATH", "/nonexistent")
	var stderr bytes.Buffer
	rc := run([]string{"run", "--script", "/etc/hostname", "--vigil", "/bin/true", "--initctl", "/bin/true"}, &bytes.Buffer{}, &stderr)
	if rc == 0 || !strings.Contains(stderr.String(), "qemu binary") {
		t.Errorf("without QEMU in PATH: status %d, %q", rc, stderr.String())
	}
}

func TestRunCommandInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; skipped with -short")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil && os.Getenv("VIGIL_REQUIRE_VM") == "" {
		t.Skip("qemu-system-x86_64 not installed (set VIGIL_REQUIRE_VM=1 to fail instead)")
	}
	if _, err := qemu.FindKernel("/boot"); err != nil && os.Getenv("VIGIL_REQUIRE_VM") == "" {
		t.Skipf("%v (set VIGIL_REQUIRE_VM=1 to fail instead)", err)
	}
	bin := testInit(t)
	script := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(script, []byte("echo guest says hi\nid -u\nexit 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	// The timeout only ends a hung guest; the boot's host time grows with
	// the host's load (90 s at load 44 for this boot; see qemu's
	// guestDeadline).
	rc := run([]string{"run", "--vigil", bin, "--initctl", bin, "--script", script, "--timeout", "3m", "--compress", "gzip"}, &stdout, &stderr)
	if rc != 7 {
		t.Fatalf("status %d, want the script's 7\nstdout:\n%s\nstderr:\n%s", rc, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || lines[0] != "guest says hi" || lines[1] != "0" {
		t.Errorf("stdout %q", stdout.String())
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "vigil-vm: default target at uptime ") || !strings.HasSuffix(last, "; shutdown clean") {
		t.Errorf("last line %q", last)
	}
}
