package pid1

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// pathHoldUnits are two identical path units on files created empty,
// whose notify services take a second, fill the file and then report
// READY=1; only held.path has hold = true. bad.path's unit fails and
// slow.path's never gets ready: their readers get hold-verdict = deny.
func pathHoldUnits() map[string]string {
	notifyService := func(dir string) string {
		return `[service]
type = "notify"
notify-access = "all"
exec-start = ["/bin/sh", "-c", "sleep 1; echo secret > /run/` + dir + `/data; /usr/bin/systemd-notify --ready; exec sleep 1000"]
`
	}
	return map[string]string{
		"held.path":     "[path]\npath-changed = \"/run/held/data\"\nhold = true\nhold-timeout = \"30s\"\n",
		"held.service":  notifyService("held"),
		"plain.path":    "[path]\npath-changed = \"/run/plain/data\"\n",
		"plain.service": notifyService("plain"),
		"bad.path":      "[path]\npath-changed = \"/run/bad/data\"\nhold = true\nhold-timeout = \"30s\"\nhold-verdict = \"deny\"\n",
		"bad.service":   "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"sleep 0.5; exit 3\"]\n",
		"slow.path":     "[path]\npath-changed = \"/run/slow/data\"\nhold = true\nhold-timeout = \"2s\"\nhold-verdict = \"deny\"\n",
		"slow.service":  "[service]\ntype = \"notify\"\ntimeout-start = \"60s\"\nexec-start = [\"/bin/sleep\", \"1000\"]\n",
	}
}

const pathHoldScript = `
up() { cut -d' ' -f1 /proc/uptime; }
for d in held plain bad slow; do mkdir -p /run/$d; : > /run/$d/data; done
echo old > /run/bad/data; echo old > /run/slow/data
initctl start held.path plain.path bad.path slow.path
initctl status held.path | grep -E 'Status|Triggers' || true
echo "held: [$(cat /run/held/data)] $(initctl is-active held.service)"
echo "plain: [$(cat /run/plain/data)] $(initctl is-active plain.service || true)"
t0=$(up); out=$(cat /run/bad/data 2>&1) && rc=0 || rc=$?; t1=$(up)
echo "bad: rc=$rc [$out] from $t0 to $t1 $(initctl is-active bad.service || true)"
t0=$(up); out=$(cat /run/slow/data 2>&1) && rc=0 || rc=$?; t1=$(up)
echo "slow: rc=$rc [$out] from $t0 to $t1"
initctl show held.path | grep -E '^(HoldStatus|SubState|Result)='
`

// TestPathHoldInGuest is issue 7's "Must show" for path units: a reader
// of a held path waits for the notify service that fills it and reads
// its content, where the same units without hold read an empty file; a
// held path whose unit fails, or does not get ready within hold-timeout,
// releases its readers with hold-verdict = deny (EPERM).
func TestPathHoldInGuest(t *testing.T) {
	skipWithoutVM(t)
	if _, err := os.Stat("/usr/bin/systemd-notify"); err != nil {
		t.Skip("/usr/bin/systemd-notify is not installed (package systemd)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image: initramfs.Spec{
			UnitDirs: []string{writeUnits(t, pathHoldUnits())},
			Adds:     []initramfs.Addition{{Host: "/usr/bin/systemd-notify", Guest: "/usr/bin/systemd-notify"}},
		},
		Script:  pathHoldScript,
		Timeout: 3 * time.Minute,
	})
	keepConsole(t, res)
	if err != nil {
		console := ""
		if res != nil {
			console = res.Console
		}
		t.Fatalf("guest run: %v\n%s", err, console)
	}
	out := strings.Join(res.ScriptOutput, "\n")
	t.Logf("script output:\n%s", out)
	if res.ExitStatus != 0 {
		t.Fatalf("script failed (%d):\n%s\n--- console ---\n%s", res.ExitStatus, out, res.Console)
	}
	for _, want := range []string{
		"held: [secret] active",
		// inotify learns of nothing until the reader is done: an empty file.
		"plain: [] inactive",
		"HoldStatus=holding opens of /run/held/data",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("script output lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{"bad", "slow"} {
		line := lineWith(res.ScriptOutput, name+": ")
		if !strings.Contains(line, "rc=1") || !strings.Contains(line, "Operation not permitted") {
			t.Errorf("%s reader was not denied: %q", name, line)
		}
		var from, to float64
		if f := strings.Fields(line[strings.Index(line, " from ")+1:]); len(f) >= 4 {
			from, _ = strconv.ParseFloat(f[1], 64)
			to, _ = strconv.ParseFloat(f[3], 64)
		}
		held := to - from
		switch name {
		case "bad":
			// Released when the unit failed, long before hold-timeout (30 s).
			if held > 20 {
				t.Errorf("bad reader held %.2f s: not released when its unit failed", held)
			}
			if !strings.Contains(line, "failed") {
				t.Errorf("bad.service did not fail: %q", line)
			}
		case "slow":
			// Released by hold-timeout = 2s, not before.
			if held < 1.9 || held > 20 {
				t.Errorf("slow reader held %.2f s, want about hold-timeout (2 s)", held)
			}
		}
	}
}

func lineWith(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
