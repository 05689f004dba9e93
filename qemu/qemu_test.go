package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
)

// requireVM skips boot tests in -short mode, and when QEMU or a kernel is
// missing, unless VIGIL_REQUIRE_VM is set (CI), where that is a failure.
func requireVM(t *testing.T) (kernel string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a QEMU guest; skipped with -short")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("VIGIL_REQUIRE_VM") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (set VIGIL_REQUIRE_VM=1 to make this a failure)", args...)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missing("qemu-system-x86_64 not installed: %v", err)
	}
	kernel, err := FindKernel("/boot")
	if err != nil {
		missing("%v", err)
	}
	if _, err := ModulesDir(kernel); err != nil {
		missing("%v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		missing("busybox-static not installed: %v", err)
	}
	return kernel
}

// testInitSpec builds the stand-in init (testdata/testinit) and returns an
// image spec using it as both vigil and initctl.
func testInitSpec(t *testing.T) initramfs.Spec {
	t.Helper()
	root, err := initramfs.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "testinit")
	if err := initramfs.BuildGoProgram(context.Background(), root, "./qemu/testdata/testinit", bin); err != nil {
		t.Fatal(err)
	}
	return initramfs.Spec{Vigil: bin, Initctl: bin}
}

// guestDeadline bounds a test boot of the stand-in init, which only a hung
// guest reaches. Its cost in host time grows with the host's load, not
// with anything under test: the same boot (kernel to a trivial script
// and poweroff) took 73 s of host time at load 17 and 90 s at load 44
// (the guest's own clock said 24 s), and CI runs four of these at once
// beside the init package's boots.
const guestDeadline = 180 * time.Second

func TestRunScriptInGuest(t *testing.T) {
	t.Parallel()
	requireVM(t)
	var out strings.Builder
	var status Status
	res, err := RunScript(context.Background(), RunConfig{
		Image:   testInitSpec(t),
		Script:  "echo hello from the guest\ncat /etc/hostname\nexit 3\n",
		Timeout: guestDeadline,
		Output:  &out,
		AfterTarget: func(ctx context.Context, vm *VM) error {
			var err error
			status, err = vm.QMP().QueryStatus(ctx)
			return err
		},
	})
	if err != nil {
		t.Fatalf("RunScript: %v", err)
	}
	if res.ExitStatus != 3 {
		t.Errorf("exit status %d, want 3", res.ExitStatus)
	}
	if got := strings.Join(res.ScriptOutput, "\n"); got != "hello from the guest\nvigil" {
		t.Errorf("script output %q", got)
	}
	if out.String() != "hello from the guest\nvigil\n" {
		t.Errorf("streamed output %q", out.String())
	}
	if res.DefaultTarget != "multi-user.target" || res.TargetUptime <= 0 || res.SinceExec < 0 || res.SinceExec > res.TargetUptime {
		t.Errorf("target %q at %v (+%v after exec)", res.DefaultTarget, res.TargetUptime, res.SinceExec)
	}
	if !res.Clean || res.ShutdownAction != "poweroff" {
		t.Errorf("shutdown %q clean=%v", res.ShutdownAction, res.Clean)
	}
	if !status.Running || status.Status != "running" {
		t.Errorf("query-status during the run: %+v", status)
	}
	if s := res.Summary(); !strings.HasPrefix(s, "vigil-vm: default target at uptime ") || !strings.HasSuffix(s, "; shutdown clean") {
		t.Errorf("summary %q", s)
	}
	t.Logf("%s; host time %v", res.Summary(), res.Elapsed)
}

func TestCtrlAltDeleteOverQMP(t *testing.T) {
	t.Parallel()
	kernel := requireVM(t)
	spec := testInitSpec(t)
	modules, err := ModulesDir(kernel)
	if err != nil {
		t.Fatal(err)
	}
	spec.ModulesDir = modules
	im, err := initramfs.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "image.cpio")
	if err := im.WriteFile(initrd, initramfs.CompressNone); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "hot.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guestDeadline)
	defer cancel()
	vm, err := Boot(ctx, Config{Kernel: kernel, Initrd: initrd, WorkDir: dir, HotplugDisks: []HotplugDisk{{ID: "d1", File: disk}}})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Cleanup()
	if _, err := vm.WaitForLine(ctx, "vigil: reached default target"); err != nil {
		t.Fatalf("%v\n%s", err, vm.ConsoleTail(20))
	}
	q := vm.QMP()
	if err := q.DeviceAdd(ctx, "virtio-blk-pci", "vblk1", map[string]any{"drive": "d1"}); err != nil {
		t.Errorf("device_add: %v", err)
	}
	var qe *QMPError
	if _, err := q.Execute(ctx, "no-such-command", nil); !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v", err)
	}
	if err := q.SendKey(ctx, "ctrl-alt-delete"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitForLine(ctx, "vigil: shutdown complete: reboot clean"); err != nil {
		t.Fatalf("after ctrl-alt-delete: %v\n%s", err, vm.ConsoleTail(20))
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("QEMU exit after guest reboot with -no-reboot: %v", err)
	}
	if log, err := os.ReadFile(filepath.Join(dir, "console.log")); err != nil || !strings.Contains(string(log), "reboot clean") {
		t.Errorf("console log lacks the shutdown line (%v)", err)
	}
}

func TestGuestHangIsKilledAtTimeout(t *testing.T) {
	t.Parallel()
	requireVM(t)
	// The guest must reach its target before the timeout for the stage
	// to be "script never started": guestDeadline, not less.
	const timeout = guestDeadline
	// Built before the clock starts: the bound below is on RunScript's
	// kill at its timeout, not on a go build on a loaded host.
	spec := testInitSpec(t)
	start := time.Now()
	res, err := RunScript(context.Background(), RunConfig{
		Image:   spec,
		Script:  "exit 0\n",
		Boot:    Config{Append: "testinit.hang"},
		Timeout: timeout,
	})
	var re *RunError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "timed out") || !strings.Contains(re.Reason, "script never started") {
		t.Fatalf("hanging guest: %v", err)
	}
	if !strings.Contains(re.Tail, "reached default target") {
		t.Errorf("console tail lacks the boot: %q", re.Tail)
	}
	if res == nil || res.DefaultTarget == "" {
		t.Errorf("result %+v", res)
	}
	if elapsed := time.Since(start); elapsed > timeout+10*time.Second {
		t.Errorf("returned after %v, timeout %v", elapsed, timeout)
	}
}

func TestUnbootableImage(t *testing.T) {
	t.Parallel()
	kernel := requireVM(t)
	dir := t.TempDir()
	initrd := filepath.Join(dir, "junk.cpio")
	if err := os.WriteFile(initrd, []byte(strings.Repeat("not an archive\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The panic ends the run at once (-no-reboot); the bound only matters
	// on a loaded host, where the kernel has taken over 60 s to start.
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	res, err := runBooted(ctx, RunConfig{Timeout: 180 * time.Second}, Config{Kernel: kernel, Initrd: initrd, WorkDir: dir})
	var re *RunError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "default target never reached") {
		t.Fatalf("junk image: %v", err)
	}
	if !strings.Contains(res.Console, "Kernel panic") {
		t.Errorf("console lacks the kernel panic:\n%s", res.Tail)
	}
}

func TestBadHostSetup(t *testing.T) {
	ctx := context.Background()
	_, err := Boot(ctx, Config{QEMU: "qemu-system-does-not-exist", Initrd: os.DevNull})
	if err == nil || !strings.Contains(err.Error(), "qemu binary") {
		t.Errorf("missing QEMU: %v", err)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		_, err = Boot(ctx, Config{Kernel: "/boot/vmlinuz-0.0.0-none", Initrd: os.DevNull})
		if err == nil || !strings.Contains(err.Error(), "kernel /boot/vmlinuz-0.0.0-none") {
			t.Errorf("missing kernel: %v", err)
		}
	}
	if _, err := FindKernel(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Errorf("empty boot dir: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "vmlinuz-0.0.1-nomodules")
	if err := os.WriteFile(fake, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ModulesDir(fake); err == nil || !strings.Contains(err.Error(), "has no modules") {
		t.Errorf("kernel without modules: %v", err)
	}
	if _, err := RunScript(ctx, RunConfig{Boot: Config{Kernel: fake}, Image: initramfs.Spec{Vigil: "/bin/true", Initctl: "/bin/true"}}); err == nil || !strings.Contains(err.Error(), "has no modules") {
		t.Errorf("RunScript with a kernel without modules: %v", err)
	}
}

func TestFindKernelPicksNewest(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "5.10.0-30-amd64", "6.1.0-56-amd64.bak"} {
		if err := os.WriteFile(filepath.Join(dir, "vmlinuz-"+r), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err := FindKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if KernelRelease(k) != "6.1.0-56-amd64.bak" {
		t.Errorf("newest %s", k)
	}
	if compareVersions("6.1.0-56-amd64", "6.1.0-9-amd64") <= 0 || compareVersions("6.10", "6.9") <= 0 || compareVersions("6.1", "6.1") != 0 {
		t.Error("compareVersions orders wrongly")
	}
}

func TestArgs(t *testing.T) {
	args := strings.Join(Args(Config{Kernel: "K", Initrd: "I", MemoryMB: 1024, SMP: 2, QMPSocket: "/q", Append: "vigil.wants=x", Disks: []string{"a.img"}, HotplugDisks: []HotplugDisk{{"d1", "b.img"}}}), " ")
	for _, want := range []string{"-accel tcg", "-smp 2", "-no-reboot", "-nic none", "-kernel K", "-initrd I", "console=ttyS0 rdinit=/init panic=-1 no_timer_check quiet vigil.wants=x", "-qmp unix:/q,server=on,wait=off", "if=virtio,format=raw,file=a.img", "if=none,format=raw,id=d1,file=b.img"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if _, err := ParseHotplugDisk("d1"); err == nil {
		t.Error("hotplug disk without file accepted")
	}
}

func TestContractLines(t *testing.T) {
	m := reachedRE.FindStringSubmatch("[  1.2] vigil: reached default target multi-user.target at uptime 2.345s (+0.120s after init exec)")
	if m == nil || m[1] != "multi-user.target" || m[2] != "2.345" || m[3] != "0.120" {
		t.Errorf("reached line: %q", m)
	}
	m = shutdownRE.FindStringSubmatch("vigil: shutdown complete: poweroff unclean (3 units failed to stop)")
	if m == nil || m[1] != "poweroff" || m[2] != "unclean" || m[3] != "3 units failed to stop" {
		t.Errorf("shutdown line: %q", m)
	}
	if beginRE.MatchString(`Starting /bin/sh -c echo VIGIL-VM-SCRIPT-BEGIN; /bin/sh /etc/vigil/vm/script`) {
		t.Error("command line echo taken as the begin marker")
	}
	if exitRE.MatchString(`echo VIGIL-VM-SCRIPT-EXIT $rc; /sbin/initctl poweroff`) {
		t.Error("command line echo taken as the exit marker")
	}
}
