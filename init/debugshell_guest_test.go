package pid1

import (
	"strings"
	"testing"
)

// TestDebugShellInGuest boots with vigil.debug-shell=/dev/tty8: a root
// shell runs on that terminal (its stdin is the tty, its parent PID 1),
// started before the default target was reached.
func TestDebugShellInGuest(t *testing.T) {
	script := `
for p in /proc/[0-9]*; do
	if [ "$(readlink $p/fd/0 2>/dev/null)" = /dev/tty8 ]; then
		echo "shell comm=$(cat $p/comm) uid=$(awk '/^Uid/{print $2}' $p/status) ppid=$(awk '/^PPid/{print $2}' $p/status)"
	fi
done
initctl is-active debug-shell.service
`
	res := mustBootGuest(t, guestRun{units: map[string]string{}, script: script, append: "vigil.debug-shell=/dev/tty8"})
	out := strings.Join(res.ScriptOutput, "\n")
	if !strings.Contains(out, "shell comm=sh uid=0 ppid=1") || !strings.Contains(out, "\nactive") {
		t.Fatalf("no root shell on /dev/tty8 under PID 1:\n%s\nconsole:\n%s", out, res.Console)
	}
	started := strings.Index(res.Console, "Started Early root shell on /dev/tty8")
	reached := strings.Index(res.Console, "vigil: reached default target")
	if started < 0 || reached < 0 || started > reached {
		t.Errorf("the debug shell did not start before the default target (at %d, target at %d):\n%s", started, reached, res.Console)
	}
}
