package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vigil/units/api"
	"vigil/units/unitfile"
)

// swapFile makes a 16 MB swap file with mkswap under /var/tmp (ext4 on the
// host; tmpfs cannot hold swap files) and returns it with its swap unit's
// name; it skips where swap cannot be made.
func swapFile(t *testing.T) (file, unit string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("swapon needs root")
	}
	mkswap, err := exec.LookPath("mkswap")
	if err != nil {
		t.Skip("mkswap not installed")
	}
	dir, err := os.MkdirTemp("/var/tmp", "vigil-swap-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file = filepath.Join(dir, "swapfile")
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+file, "bs=1M", "count=16").CombinedOutput(); err != nil {
		t.Skipf("dd: %v %s", err, out)
	}
	os.Chmod(file, 0o600)
	if out, err := exec.Command(mkswap, file).CombinedOutput(); err != nil {
		t.Skipf("mkswap: %v %s", err, out)
	}
	name, _ := unitfile.DeviceUnitName(file)
	return file, strings.TrimSuffix(name, ".device") + ".swap"
}

// TestSwapUnitActivatesAndDeactivates swaps on a 16 MB file made with
// mkswap in the test's directory (ext4 on the host; tmpfs cannot hold swap
// files) and off again.
func TestSwapUnitActivatesAndDeactivates(t *testing.T) {
	file, name := swapFile(t)
	bad := strings.TrimSuffix(name, ".swap") + "x.swap"
	h := newHarness(t, map[string]string{
		name: "[swap]\npriority = 3\noptions = \"discard\"\n",
		bad:  "[swap]\nwhat = \"" + file + "\"\n",
	})
	defer exec.Command("swapoff", file).Run()
	if res, why := h.start(name); res != api.ResultDone {
		if strings.Contains(why, "operation not permitted") || strings.Contains(why, "invalid argument") {
			t.Skipf("swapon refused here: %s", why)
		}
		t.Fatalf("start: %s (%s)", res, why)
	}
	swaps, _ := os.ReadFile("/proc/swaps")
	line := ""
	for _, l := range strings.Split(string(swaps), "\n") {
		if strings.HasPrefix(l, file) {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) < 5 || f[4] != "3" {
		t.Errorf("/proc/swaps line %q, want %s with priority 3", line, file)
	}
	if res, why := h.stop(name); res != api.ResultDone {
		t.Fatalf("stop: %s (%s)", res, why)
	}
	if swaps, _ := os.ReadFile("/proc/swaps"); strings.Contains(string(swaps), file) {
		t.Error("still in /proc/swaps after stop")
	}
	// what that does not match the name is a load error naming the key.
	var load, why string
	h.do(func() {
		u, _ := h.m.LoadUnit(bad)
		load, why = u.LoadState, u.LoadError
	})
	if load != LoadBadSetting || !strings.Contains(why, "[swap] what") && !strings.Contains(why, "what") {
		t.Errorf("mismatched what: %s (%s)", load, why)
	}
}
