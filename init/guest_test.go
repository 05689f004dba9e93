package pid1

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// guestRun is one boot of Vigil as PID 1 in QEMU with a test script.
type guestRun struct {
	// units are unit files by name; a name ending in ".link" is a symlink
	// (without the suffix) to the content, for wants directories.
	units map[string]string
	// files are extra image files (helper scripts the units run).
	files  []initramfs.File
	script string
	// append is added to the kernel command line.
	append string
	// disks are raw disk images (vda, vdb, ...).
	disks []string
	// allowEmergency, externalShutdown and afterTarget are passed to
	// qemu.RunConfig.
	allowEmergency   bool
	externalShutdown bool
	afterTarget      func(ctx context.Context, vm *qemu.VM) error
}

// skipWithoutVM skips boot tests in -short mode and, unless
// VIGIL_REQUIRE_VM is set (CI), when there is no kernel to boot.
func skipWithoutVM(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("QEMU boot skipped in -short mode")
	}
	if os.Getenv("VIGIL_REQUIRE_VM") == "" {
		if _, err := qemu.FindKernel("/boot"); err != nil {
			t.Skipf("no kernel: %v", err)
		}
	}
}

// skipWithoutModules is skipWithoutVM for tests whose image must carry
// kernel modules: without a kernel or its modules directory the test is
// skipped, or fails when VIGIL_REQUIRE_VM asks for every boot.
func skipWithoutModules(t testing.TB) {
	t.Helper()
	skipWithoutVM(t)
	missing := t.Skip
	if os.Getenv("VIGIL_REQUIRE_VM") != "" {
		missing = t.Fatal
	}
	kernel, err := qemu.FindKernel("/boot")
	if err != nil {
		missing(err)
		return
	}
	if _, err := qemu.ModulesDir(kernel); err != nil {
		missing(err)
	}
}

// writeUnits writes units (see guestRun.units) into a new directory.
func writeUnits(t testing.TB, units map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range units {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".link") {
			if err := os.Symlink(content, strings.TrimSuffix(p, ".link")); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bootGuest boots the run and returns what the harness saw, with its
// error (a harness failure: boot, script or shutdown).
func bootGuest(t *testing.T, run guestRun) (*qemu.RunResult, error) {
	t.Helper()
	skipWithoutVM(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image:            initramfs.Spec{UnitDirs: []string{writeUnits(t, run.units)}, Files: run.files},
		Script:           run.script,
		Boot:             qemu.Config{Append: run.append, Disks: run.disks},
		Timeout:          3 * time.Minute,
		AllowEmergency:   run.allowEmergency,
		ExternalShutdown: run.externalShutdown,
		AfterTarget:      run.afterTarget,
	})
	keepConsole(t, res)
	return res, err
}

// keepConsole writes the guest's console to $VIGIL_GUEST_LOGS/TestName.log
// when that variable names a directory, for looking at passing boots too.
func keepConsole(t *testing.T, res *qemu.RunResult) {
	dir := os.Getenv("VIGIL_GUEST_LOGS")
	if dir == "" || res == nil {
		return
	}
	name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log")
	if err := os.WriteFile(name, []byte(res.Console), 0o644); err != nil {
		t.Logf("keep console: %v", err)
	}
}

// mustBootGuest is bootGuest that fails the test on a harness error.
func mustBootGuest(t *testing.T, run guestRun) *qemu.RunResult {
	t.Helper()
	res, err := bootGuest(t, run)
	if err != nil {
		console := ""
		if res != nil {
			console = res.Console
		}
		t.Fatalf("guest run: %v\n%s", err, console)
	}
	return res
}

// runInGuest boots Vigil as PID 1 with extra units and runs script.
func runInGuest(t *testing.T, units map[string]string, script string, append string) *qemu.RunResult {
	t.Helper()
	return mustBootGuest(t, guestRun{units: units, script: script, append: append})
}

func TestBootReachesDefaultTargetInGuest(t *testing.T) {
	units := map[string]string{
		"hello.service":  "[unit]\ndescription = \"Hello\"\n[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/sh\", \"-c\", \"echo hello > /run/hello\"]\n",
		"daemon.service": "[unit]\ndescription = \"Daemon\"\nafter = [\"hello.service\"]\n[service]\nexec-start = \"/bin/sleep 1000\"\n",
		"multi-user.target.wants/hello.service.link":  "../hello.service",
		"multi-user.target.wants/daemon.service.link": "../daemon.service",
		"broken.service": "[service\nexec-start = \"/bin/true\"\n",
		"multi-user.target.wants/broken.service.link": "../broken.service",
	}
	script := `
set -e
cat /run/hello
initctl is-active hello.service daemon.service
test "$(cat /proc/1/comm)" = init || { echo "PID 1 is $(cat /proc/1/comm)"; exit 1; }
test -d /run/systemd/system
hostname
# 100 orphans: each subshell exits at once, its sleep is re-parented to PID 1.
for i in $(seq 1 100); do (sleep 0.2 &) ; done
# Until every orphan has exited (a zombie has no command line), then until
# none is left unreaped: deadlines, not speeds, as forks under TCG on a
# loaded host take their time (a fixed 1.5 s could end with orphans still
# exiting).
for i in $(seq 1 600); do grep -qa 'sleep.0[.]2' /proc/[0-9]*/cmdline 2>/dev/null || break; sleep 0.1; done
for i in $(seq 1 100); do
	z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)
	test "$z" = 0 && break
	sleep 0.1
done
echo "zombies=$z"
test "$z" = 0
`
	res := runInGuest(t, units, script, "")
	if res.ExitStatus != 0 {
		t.Fatalf("script failed (%d):\n%s", res.ExitStatus, strings.Join(res.ScriptOutput, "\n"))
	}
	out := strings.Join(res.ScriptOutput, "\n")
	for _, want := range []string{"hello", "active\nactive", "zombies=0"} {
		if !strings.Contains(out, want) {
			t.Errorf("script output lacks %q:\n%s", want, out)
		}
	}
	if res.DefaultTarget != "multi-user.target" || res.TargetUptime == 0 {
		t.Errorf("default target %q at %v", res.DefaultTarget, res.TargetUptime)
	}
	if !res.Clean || res.ShutdownAction != "poweroff" {
		t.Errorf("shutdown %s clean=%v (%s)", res.ShutdownAction, res.Clean, res.UncleanReason)
	}
	if !strings.Contains(res.Console, "broken.service") {
		t.Errorf("the broken unit was not reported on the console")
	}
}
