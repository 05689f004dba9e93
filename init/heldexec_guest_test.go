package pid1

import (
	"fmt"
	"strings"
	"testing"

	"vigil/initramfs"
)

// heldExecPolicy logs every exec of the machine: the auditor marks the
// whole root file system (MarkTree "/") for exec, so every unit process
// PID 1 starts has an exec fanotify holds.
const heldExecPolicy = `mode = "enforce"
decision-timeout = "5s"
[[rule]]
name = "every-exec"
access = ["exec"]
action = "log"
`

const heldExecSpins = 30

const heldExecScript = `
echo "kernel=$(uname -r)"
/sbin/vigil -h >/dev/null 2>&1; echo "own-exec rc=$?"
cp /init /tmp/vigil-copy; /tmp/vigil-copy -h >/dev/null 2>&1; echo "copy-exec rc=$?"
/bin/true; echo "true rc=$?"
list=""; i=1; while [ $i -le 30 ]; do list="$list spin$i.service"; i=$((i+1)); done
initctl start $list && echo started-all
n=0; for u in $list; do [ "$(initctl is-active $u)" = active ] && n=$((n+1)); done; echo "active=$n"
initctl audit -n 0 -o json > /tmp/audit.json
echo "own-records=$(grep -c '"path":"/init"' /tmp/audit.json)"
echo "copy-records=$(grep -c '"path":"/tmp/vigil-copy"' /tmp/audit.json)"
echo "busybox-records=$(grep -c '"path":"/bin/busybox"' /tmp/audit.json)"
echo "inline-records=$(grep -c '"via":"inline"' /tmp/audit.json)"
echo "pid1=$(cat /proc/1/comm)"
echo "stub-fds=$(ls -l /proc/1/fd | grep -c 'memfd:vigil-exec-stub')"
`

// TestHeldExecInGuest: on the guest's kernel, with every exec of the root
// file system held (a mount mark), PID 1 starts 30 services (through the
// exec stub, whose memfd's exec makes no event while its exec of the
// program is answered inline; PID 1 holds the memfd twice, once for the
// stub and once for the fanotify source's mark), and an exec of Vigil's own binary by someone else
// is not even reported (the ignore mark), while every other exec is, a
// copy of that binary included.
func TestHeldExecInGuest(t *testing.T) {
	units := map[string]string{}
	for i := 1; i <= heldExecSpins; i++ {
		units[fmt.Sprintf("spin%d.service", i)] = "[service]\ntype = \"oneshot\"\nremain-after-exit = true\nexec-start = [\"/bin/true\"]\n"
	}
	res := mustBootGuest(t, guestRun{
		units:  units,
		files:  []initramfs.File{{Path: "/etc/vigil/audit.toml", Data: []byte(heldExecPolicy), Mode: 0o644}},
		script: heldExecScript,
	})
	out := strings.Join(res.ScriptOutput, "\n")
	t.Logf("guest:\n%s", out)
	if res.ExitStatus != 0 {
		t.Fatalf("script failed (%d):\n%s", res.ExitStatus, out)
	}
	for _, want := range []string{"true rc=0", "started-all", fmt.Sprintf("active=%d", heldExecSpins), "own-records=0", "pid1=init", "stub-fds=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A copy of Vigil's binary is another inode: its exec is reported.
	if strings.Contains(out, "busybox-records=0") || strings.Contains(out, "inline-records=0") || strings.Contains(out, "copy-records=0") {
		t.Errorf("execs were not held and logged (the mark covers nothing, the test proves nothing):\n%s", out)
	}
	if strings.Contains(out, "own-exec rc=126") {
		t.Errorf("exec of Vigil's own binary was refused:\n%s", out)
	}
}
