package pid1

// Disks and scripts shared by the guest tests of mounts, automounts and
// devices: ext4 images made on the host, the shell functions every guest
// script starts with, and one boot-and-check for runs with disks.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/qemu"
)

// ext4Disk describes an 8 MiB ext4 image for makeExt4.
type ext4Disk struct {
	label string
	// uuid is the file system's UUID; empty: mkfs.ext4's random one
	// (ext4UUID reads it back).
	uuid string
	// files are put at the image's root, name to content.
	files map[string]string
}

// makeExt4 makes the image at path with mkfs.ext4 (skipping the test when
// it is not installed).
func makeExt4(t *testing.T, path string, d ext4Disk) {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	args := []string{"-q", "-F", "-L", d.label}
	if d.uuid != "" {
		args = append(args, "-U", d.uuid)
	}
	if len(d.files) > 0 {
		src := t.TempDir()
		for name, content := range d.files {
			if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args = append(args, "-d", src)
	}
	args = append(args, path, "8M")
	if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %v: %v\n%s", args, err, out)
	}
}

// ext4UUID reads the UUID of the file system in the image at path.
func ext4UUID(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-s", "UUID", "-o", "value", path).Output()
	if err != nil {
		t.Skipf("blkid: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// guestScriptPrelude holds the shell functions the guest scripts use:
//   - fail MESSAGE: print "FAIL MESSAGE" (and the status of $unit, when
//     the script set it) and end the script with status 1;
//   - wait_for SECONDS COMMAND...: retry COMMAND every 0.1 s until it
//     succeeds or SECONDS pass (then status 1);
//   - now: the kernel's monotonic clock in nanoseconds;
//   - mounted WHERE TYPE: whether a TYPE file system is mounted at WHERE.
const guestScriptPrelude = `
fail() { echo "FAIL $*"; [ -z "$unit" ] || initctl status "$unit" 2>&1 | sed 's/^/  /'; exit 1; }
wait_for() { # seconds, command...
	n=$(($1 * 10)); shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1)); [ $n -gt 0 ] || return 1
		sleep 0.1
	done
}
now() { awk '/now at/ {print $3; exit}' /proc/timer_list; }
mounted() { grep -q " $1 $2 " /proc/self/mounts; }
`

// bootDiskGuest runs cfg (its Script after guestScriptPrelude) within
// limit and fails the test on a harness error or a script that did not
// exit 0; the console is kept as keepConsole does.
func bootDiskGuest(t *testing.T, cfg qemu.RunConfig, limit time.Duration) *qemu.RunResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cfg.Script = guestScriptPrelude + cfg.Script
	res, err := qemu.RunScript(ctx, cfg)
	keepConsole(t, res)
	if err != nil {
		console := ""
		if res != nil {
			console = res.Console
		}
		t.Fatalf("guest run: %v\n%s", err, console)
	}
	wantScriptPassed(t, res)
	return res
}

// wantScriptPassed fails the test when the guest script exited non-zero.
func wantScriptPassed(t *testing.T, res *qemu.RunResult) {
	t.Helper()
	if res.ExitStatus != 0 {
		t.Fatalf("guest script failed (%d):\n%s\n--- console:\n%s", res.ExitStatus, strings.Join(res.ScriptOutput, "\n"), res.Console)
	}
}

// wantResults checks that the script printed every one of the lines.
func wantResults(t *testing.T, res *qemu.RunResult, lines ...string) {
	t.Helper()
	for _, want := range lines {
		if !slices.Contains(res.ScriptOutput, want) {
			t.Errorf("missing %q in the script's output:\n%s", want, strings.Join(res.ScriptOutput, "\n"))
		}
	}
}
