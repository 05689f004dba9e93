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

// runInGuest boots Vigil as PID 1 with extra units and runs script.
func runInGuest(t *testing.T, units map[string]string, script string, append string) *qemu.RunResult {
	t.Helper()
	if testing.Short() {
		t.Skip("QEMU boot skipped in -short mode")
	}
	if os.Getenv("VIGIL_REQUIRE_VM") == "" {
		if _, err := qemu.FindKernel("/boot"); err != nil {
			t.Skipf("no kernel: %v", err)
		}
	}
	dir := t.TempDir()
	for name, content := range units {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if strings.HasSuffix(name, ".link") {
			os.Symlink(content, strings.TrimSuffix(p, ".link"))
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image:   initramfs.Spec{UnitDirs: []string{dir}},
		Script:  script,
		Boot:    qemu.Config{Append: append},
		Timeout: 3 * time.Minute,
	})
	if err != nil {
		console := ""
		if res != nil {
			console = res.Console
		}
		t.Fatalf("guest run: %v\n%s", err, console)
	}
	return res
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
sleep 1.5
z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)
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
