package pid1

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The guest script of TestAutomountInGuest; it reports with RESULT lines.
// Clock reads cost an awk each (milliseconds under TCG): the script
// measures that cost too (baseline-ns), and the accesses themselves are
// shell built-ins ([ -e ]), so no exec is timed.
const automountGuestScript = guestScriptPrelude + `

wait_for 60 initctl is-active mnt-data.automount || fail "automount: $(initctl status mnt-data.automount)"
mounted /mnt/data autofs || fail "no autofs trigger at /mnt/data: $(cat /proc/self/mounts)"
initctl is-active mnt-data.mount >/dev/null && fail "mnt-data.mount active before any access"
mounted /mnt/data ext4 && fail "ext4 mounted before any access"

# First access: ls sees the disk's file.
out=$(ls /mnt/data) || fail "ls /mnt/data failed"
echo "$out" | grep -qx known.txt || fail "ls /mnt/data: $out"
# Keep the mount busy while it is checked: with timeout-idle = 1s the
# checks below (each an exec, seconds apart under TCG on a loaded host)
# could otherwise find it already expired.
exec 3< /mnt/data/known.txt
[ "$(cat /mnt/data/known.txt)" = "@CONTENT@" ] || fail "known.txt: $(cat /mnt/data/known.txt)"
mounted /mnt/data ext4 || fail "ext4 not mounted after the access"
initctl is-active mnt-data.mount >/dev/null || fail "mnt-data.mount: $(initctl is-active mnt-data.mount)"
exec 3<&-
echo "RESULT first-access ok"

# Idle expiry, then one timed first access per round and timed accesses
# while mounted.
i=0
while [ $i -lt @ROUNDS@ ]; do
	wait_for 60 sh -c '! grep -q " /mnt/data ext4 " /proc/self/mounts' || fail "round $i: the idle mount did not expire"
	t0=$(now); t1=$(now)
	echo "RESULT baseline-ns $((t1 - t0))"
	t0=$(now); [ -e /mnt/data/known.txt ] || fail "round $i: known.txt missing after remount"; t1=$(now)
	echo "RESULT first-ns $((t1 - t0))"
	t0=$(now); [ -e /mnt/data/known.txt ] || fail "round $i: known.txt missing while mounted"; t1=$(now)
	echo "RESULT mounted-ns $((t1 - t0))"
	i=$((i + 1))
done
echo "RESULT expiry ok"

# 20 processes at once on an expired mount: all wait, all succeed.
wait_for 60 sh -c '! grep -q " /mnt/data ext4 " /proc/self/mounts' || fail "the idle mount did not expire"
i=0
while [ $i -lt 20 ]; do
	( cat /mnt/data/known.txt > /run/conc.$i 2>&1; echo $? > /run/conc-rc.$i ) &
	i=$((i + 1))
done
wait
i=0
while [ $i -lt 20 ]; do
	[ "$(cat /run/conc-rc.$i)" = 0 ] || fail "accessor $i: rc $(cat /run/conc-rc.$i): $(cat /run/conc.$i)"
	[ "$(cat /run/conc.$i)" = "@CONTENT@" ] || fail "accessor $i read $(cat /run/conc.$i)"
	i=$((i + 1))
done
echo "RESULT concurrent ok"
initctl show mnt-data.automount | grep -E '^(Requests|FailedRequests)=' | sed 's/^/RESULT /'

# A mount whose device never comes: accessors fail once the device's
# timeout passes, they do not hang; the mount unit is failed and says
# which device is missing; the automount keeps waiting, and the next
# access tries again (and fails again).
for round in 1 2; do
	t0=$(now)
	ls /mnt/gone > /run/gone.out 2>&1 && fail "ls /mnt/gone succeeded: $(cat /run/gone.out)"
	t1=$(now)
	echo "RESULT gone-fail-ns $((t1 - t0))"
	echo "RESULT gone-error $(cat /run/gone.out)"
	wait_for 30 initctl is-failed mnt-gone.mount || fail "mnt-gone.mount after access $round: $(initctl is-active mnt-gone.mount)"
	initctl status mnt-gone.mount > /run/gone.status 2>&1
	grep -q "Device /dev/vdz did not appear within 3s" /run/gone.status || fail "mnt-gone.mount status does not name the device: $(cat /run/gone.status)"
	initctl show mnt-gone.mount | grep -qx "Result=device-timeout" || fail "mnt-gone.mount: $(initctl show mnt-gone.mount | grep Result)"
	initctl is-active mnt-gone.automount >/dev/null || fail "mnt-gone.automount went down: $(initctl is-active mnt-gone.automount)"
	initctl show mnt-gone.automount | grep -qx "FailedRequests=$round" || fail "mnt-gone.automount after access $round: $(initctl show mnt-gone.automount | grep Requests)"
done
echo "RESULT gone-failed ok"

# A mount that fails (no such file system type): the unit is failed.
ls /mnt/bad > /run/bad.out 2>&1 && fail "ls /mnt/bad succeeded"
echo "RESULT bad-error $(cat /run/bad.out)"
wait_for 30 initctl is-failed mnt-bad.mount || fail "mnt-bad.mount: $(initctl is-active mnt-bad.mount)"
echo "RESULT bad-failed ok"

# Stop: the mount goes, then the trigger.
[ -e /mnt/data/known.txt ] || fail "known.txt before stop"
initctl stop mnt-data.automount || fail "stop failed"
mounted /mnt/data ext4 && fail "ext4 still mounted after the automount stopped"
mounted /mnt/data autofs && fail "autofs still mounted after stop"
echo "RESULT stop ok"
`

// TestAutomountInGuest boots Vigil as PID 1 with an ext4 disk (made on the
// host with a known file) behind mnt-data.automount: the first ls returns
// the file, the idle mount expires and mounts again, 20 processes at once
// all wait and succeed, a mount whose device is missing fails its
// accessors within the device timeout and is failed naming the device
// (every access tries again), a mount of an unknown file system
// type is failed, and stopping the automount unmounts both.
func TestAutomountInGuest(t *testing.T) {
	skipWithoutVM(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "data.img")
	const content = "hello from the automounted disk"
	makeExt4(t, img, ext4Disk{label: "vigil-auto", files: map[string]string{"known.txt": content}})
	const rounds = 5
	script := strings.NewReplacer("@CONTENT@", content, "@ROUNDS@", strconv.Itoa(rounds)).Replace(automountGuestScript)
	units := map[string]string{
		"mnt-data.mount":     "[unit]\nstart-limit-burst = 0\n[mount]\nwhat = \"/dev/vda\"\ntype = \"ext4\"\ntimeout = \"20s\"\n",
		"mnt-data.automount": "[automount]\ntimeout-idle = \"1s\"\n",
		"mnt-gone.mount":     "[mount]\nwhat = \"/dev/vdz\"\ntype = \"ext4\"\n",
		"mnt-gone.automount": "[automount]\n",
		"dev-vdz.device":     "[unit]\njob-timeout = \"3s\"\n",
		"mnt-bad.mount":      "[mount]\nwhat = \"/dev/vda\"\ntype = \"nosuchfs\"\n",
		"mnt-bad.automount":  "[automount]\n",
		"multi-user.target.wants/mnt-data.automount.link": "../mnt-data.automount",
		"multi-user.target.wants/mnt-gone.automount.link": "../mnt-gone.automount",
		"multi-user.target.wants/mnt-bad.automount.link":  "../mnt-bad.automount",
	}
	res := mustBootGuest(t, guestRun{units: units, script: script, disks: []string{img}, append: "vigil.log-level=debug"})
	wantScriptPassed(t, res)
	wantResults(t, res, "RESULT first-access ok", "RESULT expiry ok", "RESULT concurrent ok", "RESULT gone-failed ok", "RESULT bad-failed ok", "RESULT stop ok")
	samples := map[string][]time.Duration{}
	for _, line := range res.ScriptOutput {
		rest, ok := strings.CutPrefix(line, "RESULT ")
		if !ok {
			continue
		}
		key, value, _ := strings.Cut(rest, " ")
		if strings.HasSuffix(key, "-ns") {
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			if err != nil || n <= 0 {
				t.Errorf("bad sample %q", line)
				continue
			}
			samples[key] = append(samples[key], time.Duration(n))
			continue
		}
		if strings.TrimSpace(value) != "ok" {
			t.Logf("%s", rest)
		}
	}
	for _, key := range []string{"baseline-ns", "first-ns", "mounted-ns", "gone-fail-ns"} {
		s := samples[key]
		if len(s) == 0 {
			t.Errorf("no %s samples", key)
			continue
		}
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		t.Logf("%s (%d): min %v, median %v, max %v", key, len(s), s[0].Round(time.Microsecond), s[len(s)/2].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
	}
}
