package pid1

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// The D-Bus guest tests run clients no one here wrote (systemd 252's
// systemctl, systemd-run and busctl, GLib's gdbus, libdbus's dbus-send,
// prometheus-node-exporter, and go-systemd in a static helper) against
// Vigil as PID 1 in QEMU: root over /run/systemd/private, root and an
// unprivileged user over a real system bus (Debian's dbus-daemon, run by
// Vigil as dbus.service).

// dbusClientPrograms are the host programs the guest needs; the tests skip
// when one of the required ones is missing.
var dbusClientPrograms = []struct {
	path     string
	required bool
}{
	{"/usr/bin/systemctl", true},
	{"/usr/bin/dbus-daemon", true},
	{"/usr/bin/dbus-send", true},
	{"/usr/bin/busctl", false},
	{"/usr/bin/systemd-run", false},
	{"/usr/bin/gdbus", false},
	{"/usr/bin/prometheus-node-exporter", false},
	// util-linux's setpriv: busybox's has no --reuid.
	{"/usr/bin/setpriv", true},
}

// dbusBusUnits run Debian's dbus-daemon as the system bus, started at boot
// (as multi-user.target pulls in dbus.service on Debian) and
// socket-activated.
func dbusBusUnits() map[string]string {
	return map[string]string{
		"dbus.socket": `[unit]
description = "D-Bus System Message Bus Socket"
[socket]
listen-stream = ["/run/dbus/system_bus_socket"]
`,
		"sockets.target.wants/dbus.socket.link": "../dbus.socket",
		"dbus.service": `[unit]
description = "D-Bus System Message Bus"
requires = ["dbus.socket"]
[service]
type = "notify"
timeout-start = "60s"
exec-start = ["/usr/bin/dbus-daemon", "--system", "--address=systemd:", "--nofork", "--nopidfile", "--systemd-activation"]
`,
		"multi-user.target.wants/dbus.service.link": "../dbus.service",
	}
}

// dbusGuestSpec is an image with the D-Bus clients, the system bus
// configuration, units and the static helper (/usr/local/bin/dbusclient,
// from testdata/dbusclient); withBus adds the bus units, which start
// dbus-daemon at boot.
func dbusGuestSpec(t testing.TB, units map[string]string, withBus bool) initramfs.Spec {
	t.Helper()
	var adds []initramfs.Addition
	for _, p := range dbusClientPrograms {
		if _, err := os.Stat(p.path); err != nil {
			if p.required {
				skipOrFailWithoutTool(t, p.path)
			}
			continue
		}
		adds = append(adds, initramfs.Addition{Host: p.path, Guest: p.path})
	}
	adds = append(adds, initramfs.Addition{Host: buildDBusClient(t), Guest: "/usr/local/bin/dbusclient"})
	all := map[string]string{}
	if withBus {
		all = dbusBusUnits()
	}
	for name, text := range units {
		all[name] = text
	}
	return initramfs.Spec{
		UnitDirs: []string{writeUnits(t, all)},
		Adds:     adds,
		Files: []initramfs.File{
			{Path: "/usr/share/dbus-1/system.conf", Data: []byte(dbusSystemConf), Mode: 0o644},
			{Path: "/etc/machine-id", Data: []byte("0123456789abcdef0123456789abcdef\n"), Mode: 0o444},
		},
	}
}

// buildDBusClient builds testdata/dbusclient as a static binary.
func buildDBusClient(t testing.TB) string {
	t.Helper()
	root, err := initramfs.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dbusclient")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := initramfs.BuildGoProgram(ctx, root, "./init/testdata/dbusclient", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// dbusScriptPrelude defines step, which runs a command with its output
// going to a file (so systemctl sees no terminal: no pager, no colours,
// no ellipsis, as in a script) and prints it between markers with its exit
// status, and waitbus, which waits until Vigil owns its name on the system
// bus.
const dbusScriptPrelude = `
export LC_ALL=C SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb COLUMNS=200
# GLib looks for the system bus under /var/run, a link to /run on Debian.
[ -e /var/run ] || ln -s /run /var/run
step() {
	name=$1; shift
	"$@" > /tmp/step.out 2>&1
	rc=$?
	echo "@@@ BEGIN $name"
	cat /tmp/step.out
	echo "@@@ END $name rc=$rc"
}
asuser() { /usr/bin/setpriv --reuid=1000 --regid=1000 --clear-groups "$@"; }
waitbus() {
	for i in $(seq 1 300); do
		if dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
			org.freedesktop.DBus.NameHasOwner string:org.freedesktop.systemd1 2>/dev/null | grep -q 'boolean true'; then
			return 0
		fi
		sleep 0.1
	done
	echo "org.freedesktop.systemd1 never appeared on the system bus"
	return 1
}
`

// stepResult is one step's output and exit status.
type stepResult struct {
	out  string
	code int
	seen bool
}

var stepEndRE = regexp.MustCompile(`^@@@ END (\S+) rc=(\d+)$`)

// parseSteps splits script output into the steps the prelude printed.
func parseSteps(lines []string) map[string]stepResult {
	steps := map[string]stepResult{}
	var cur string
	var buf []string
	for _, l := range lines {
		// A getty's prompt may precede the marker on its line.
		if i := strings.Index(l, "@@@ BEGIN "); i >= 0 {
			cur, buf = strings.TrimSpace(l[i+len("@@@ BEGIN "):]), nil
			continue
		}
		if m := stepEndRE.FindStringSubmatch(l); m != nil && m[1] == cur {
			code, _ := strconv.Atoi(m[2])
			steps[cur] = stepResult{out: strings.Join(buf, "\n"), code: code, seen: true}
			cur = ""
			continue
		}
		if cur != "" {
			buf = append(buf, l)
		}
	}
	return steps
}

// stepChecker asserts on parsed steps.
type stepChecker struct {
	t     *testing.T
	steps map[string]stepResult
}

func (c stepChecker) get(name string) (stepResult, bool) {
	c.t.Helper()
	s, ok := c.steps[name]
	if !ok {
		c.t.Errorf("step %s did not run", name)
	}
	return s, ok
}

// code checks a step's exit status.
func (c stepChecker) code(name string, want int) {
	c.t.Helper()
	if s, ok := c.get(name); ok && s.code != want {
		c.t.Errorf("%s exited %d, want %d; output:\n%s", name, s.code, want, s.out)
	}
}

// has checks that a step's output matches every regular expression.
func (c stepChecker) has(name string, res ...string) {
	c.t.Helper()
	s, ok := c.get(name)
	if !ok {
		return
	}
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(s.out) {
			c.t.Errorf("%s: output lacks /%s/:\n%s", name, re, s.out)
		}
	}
}

// lacks checks that a step's output matches none of the expressions.
func (c stepChecker) lacks(name string, res ...string) {
	c.t.Helper()
	s, ok := c.get(name)
	if !ok {
		return
	}
	for _, re := range res {
		if regexp.MustCompile(re).MatchString(s.out) {
			c.t.Errorf("%s: output has /%s/:\n%s", name, re, s.out)
		}
	}
}

// okHas is code 0 and has.
func (c stepChecker) okHas(name string, res ...string) {
	c.t.Helper()
	c.code(name, 0)
	c.has(name, res...)
}

// dbusTestUnits are the units the systemctl steps act on.
func dbusTestUnits() map[string]string {
	return map[string]string{
		"sleeper.service": `[unit]
description = "Sleeping test service"
[service]
exec-start = ["/bin/sleep", "1000"]
exec-reload = "/bin/sh -c 'echo reloaded >> /run/sleeper-reloads'"
`,
		"once.service": `[unit]
description = "One-shot test"
[service]
type = "oneshot"
exec-start = ["/bin/sh", "-c", "echo ran >> /run/once-runs"]
`,
		"gosd-once.service": `[unit]
description = "One-shot for go-systemd"
[service]
type = "oneshot"
remain-after-exit = true
exec-start = "/bin/true"
`,
		"fail.service": `[unit]
description = "Failing test"
[service]
type = "oneshot"
exec-start = "/bin/false"
`,
		// Long enough to be running at list-jobs however slowly systemctl
		// starts on a loaded host (a 4 s sleep could end first); the
		// script stops it after list-jobs.
		"slow.service": `[unit]
description = "Slow one-shot"
[service]
type = "oneshot"
exec-start = ["/bin/sleep", "600"]
`,
		"killme.service": `[unit]
description = "Service to kill"
[service]
exec-start = ["/bin/sleep", "1000"]
`,
		"enab.service": `[unit]
description = "Enable test"
[service]
exec-start = ["/bin/sleep", "1000"]
[install]
wanted-by = ["multi-user.target"]
`,
		"test.target": `[unit]
description = "Test target"
wants = ["sleeper.service", "once.service"]
`,
	}
}

// dbusMainScript is the script of TestSystemctlAndDBusClientsInGuest. It
// ends by powering the guest off through systemctl.
const dbusMainScript = dbusScriptPrelude + `
test -S /run/systemd/private && test -d /run/systemd/system && echo "private socket present"

# --- root over /run/systemd/private ---
step version systemctl --version
step start-sleeper systemctl start sleeper.service
step list-units systemctl list-units
step list-units-all systemctl list-units --all
step list-units-type systemctl list-units --all --type=target
step list-units-pattern systemctl list-units --all 's*' 'once*'
step start-fail systemctl start fail.service
step list-units-failed systemctl list-units --state=failed
step list-unit-files systemctl list-unit-files '*.service'
step status-sleeper systemctl status sleeper.service
step status-fail systemctl status fail.service
step status-missing systemctl status nonexist.service
step show-p systemctl show -p ActiveState,SubState,MainPID,Id,Type sleeper.service
step show-value systemctl show -p ActiveState --value sleeper.service
step show-all systemctl show sleeper.service
step cat systemctl cat sleeper.service
step is-active-yes systemctl is-active sleeper.service
step is-active-no systemctl is-active once.service
step is-active-missing systemctl is-active nonexist.service
step is-failed-yes systemctl is-failed fail.service
step is-failed-no systemctl is-failed sleeper.service
step is-enabled-static systemctl is-enabled sleeper.service
step is-enabled-before systemctl is-enabled enab.service
step enable systemctl enable enab.service
step enable-link ls -l /etc/vigil/units/multi-user.target.wants/enab.service
step is-enabled-after systemctl is-enabled enab.service
step disable systemctl disable enab.service
step is-enabled-disabled systemctl is-enabled enab.service
step start-once systemctl start once.service
step once-runs cat /run/once-runs
step stop systemctl stop sleeper.service
step stopped systemctl is-active sleeper.service
step start-noblock systemctl --no-block start sleeper.service
step restart systemctl restart sleeper.service
step restart-state systemctl show -p ActiveState,SubState,NRestarts sleeper.service
step reload systemctl reload sleeper.service
step reloads cat /run/sleeper-reloads
step try-restart systemctl try-restart sleeper.service
step try-restart-inactive systemctl try-restart killme.service
step try-restart-inactive-state systemctl is-active killme.service
step restart-noblock systemctl --no-block restart sleeper.service
step start-slow-noblock systemctl --no-block start slow.service
step list-jobs systemctl list-jobs
systemctl stop slow.service
step start-killme systemctl start killme.service
step kill systemctl kill killme.service
# kill returns once the signal is sent: wait for the unit to take the exit.
for i in $(seq 1 300); do case "$(initctl is-active killme.service)" in inactive|failed) break;; esac; sleep 0.1; done
step killed-state systemctl show -p ActiveState,Result killme.service
step reset-failed systemctl reset-failed fail.service
step after-reset-failed systemctl is-failed fail.service
step list-dependencies systemctl list-dependencies --plain test.target
cat > /etc/vigil/units/added.service <<'EOF'
[unit]
description = "Added before daemon-reload"
[service]
type = "oneshot"
exec-start = "/bin/true"
EOF
step daemon-reload systemctl daemon-reload
step added-status systemctl show -p LoadState,Description added.service
step start-added systemctl start added.service

# --- the system bus ---
step waitbus waitbus
step bus-root-list env SYSTEMCTL_FORCE_BUS=1 systemctl list-units --all --type=service
step bus-root-start env SYSTEMCTL_FORCE_BUS=1 systemctl start once.service
step bus-root-stop env SYSTEMCTL_FORCE_BUS=1 systemctl stop sleeper.service
step bus-root-start-fail env SYSTEMCTL_FORCE_BUS=1 systemctl start fail.service
step bus-root-is-active env SYSTEMCTL_FORCE_BUS=1 systemctl is-active sleeper.service
step bus-user-id asuser id -u
step bus-user-list asuser systemctl list-units --all
step bus-user-status asuser systemctl status fail.service killme.service
step bus-user-show asuser systemctl show -p Id,ActiveState --value once.service
step bus-user-is-active asuser systemctl is-active dbus.service
step bus-user-start asuser systemctl --no-ask-password start sleeper.service
step bus-user-stop asuser systemctl --no-ask-password stop dbus.service
step bus-user-dbus-send asuser dbus-send --system --print-reply --dest=org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager.StartUnit string:sleeper.service string:replace
step busctl-tree busctl --no-pager tree org.freedesktop.systemd1
step busctl-introspect busctl --no-pager introspect org.freedesktop.systemd1 /org/freedesktop/systemd1
step busctl-introspect-unit busctl --no-pager introspect org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/sleeper_2eservice
step busctl-get-property busctl get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager Version
step busctl-get-unit-property busctl get-property org.freedesktop.systemd1 /org/freedesktop/systemd1/unit/dbus_2eservice org.freedesktop.systemd1.Unit ActiveState
step gdbus-introspect gdbus introspect --system --dest org.freedesktop.systemd1 --object-path /org/freedesktop/systemd1
step systemd-run systemd-run --wait --unit=transient-test -p Description=Transient /bin/sh -c 'echo transient-ran > /run/transient'
step systemd-run-file cat /run/transient
step systemd-run-fail systemd-run --wait --unit=transient-fail /bin/sh -c 'exit 3'
step systemd-run-scope systemd-run --scope --unit=scope-test /bin/sh -c 'cat /proc/self/cgroup'
mkdir -p /run/outside
printf '[service]\ntype = "oneshot"\nexec-start = "/bin/true"\n' > /run/outside/linked.service
step link systemctl link /run/outside/linked.service
step link-start systemctl start linked.service

# --- go-systemd ---
step gosd-private dbusclient gosd private
step gosd-system dbusclient gosd system

# --- prometheus-node-exporter's systemd collector ---
if command -v prometheus-node-exporter >/dev/null; then
	systemctl stop slow.service
	prometheus-node-exporter --collector.disable-defaults --collector.systemd --web.listen-address=127.0.0.1:9100 > /tmp/node-exporter.log 2>&1 &
	for i in $(seq 1 100); do wget -q -O /tmp/metrics http://127.0.0.1:9100/metrics 2>/dev/null && break; sleep 0.2; done
	step node-exporter grep -E '^node_systemd_(unit_state|units)' /tmp/metrics
	step node-exporter-log cat /tmp/node-exporter.log
	kill %1
fi

# --- poweroff through systemctl, the last step ---
echo "@@@ POWEROFF"
systemctl poweroff
echo "@@@ POWEROFF-RETURNED rc=$?"
sleep 120
`

// runDBusGuest boots the D-Bus image with units and runs script; with
// externalShutdown the script powers the guest off itself. When
// VIGIL_GUEST_REPLAY names a directory, nothing boots: the console kept
// there by an earlier run (VIGIL_GUEST_LOGS) is read instead, to re-check
// the assertions without a boot.
func runDBusGuest(t *testing.T, units map[string]string, script string, externalShutdown bool) *qemu.RunResult {
	t.Helper()
	if dir := os.Getenv("VIGIL_GUEST_REPLAY"); dir != "" {
		return replayGuest(t, filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"))
	}
	skipWithoutVM(t)
	spec := dbusGuestSpec(t, units, true)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image:            spec,
		Script:           script,
		Boot:             qemu.Config{MemoryMB: 1024},
		Timeout:          8 * time.Minute,
		ExternalShutdown: externalShutdown,
	})
	keepConsole(t, res)
	if err != nil {
		console := ""
		if res != nil {
			console = res.Console
		}
		t.Fatalf("guest run: %v\n%s", err, console)
	}
	return res
}

var (
	replayExitRE     = regexp.MustCompile(`VIGIL-VM-SCRIPT-EXIT (\d+)$`)
	replayShutdownRE = regexp.MustCompile(`vigil: shutdown complete: (poweroff|reboot|halt) (clean|unclean)`)
)

// replayGuest rebuilds the parts of a RunResult the D-Bus tests use from
// a kept console log.
func replayGuest(t *testing.T, path string) *qemu.RunResult {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("replay: %v", err)
	}
	res := &qemu.RunResult{ExitStatus: -1, Console: string(data)}
	in := false
	for _, l := range strings.Split(res.Console, "\n") {
		switch {
		case !in && strings.HasSuffix(l, "VIGIL-VM-SCRIPT-BEGIN"):
			in = true
		case in && replayExitRE.MatchString(l):
			res.ExitStatus = atoi(replayExitRE.FindStringSubmatch(l)[1])
			in = false
		case in:
			res.ScriptOutput = append(res.ScriptOutput, l)
		}
		if m := replayShutdownRE.FindStringSubmatch(l); m != nil {
			res.ShutdownAction, res.Clean = m[1], m[2] == "clean"
		}
	}
	return res
}

// TestSystemctlAndDBusClientsInGuest boots Vigil with a system bus and
// runs the real clients; it ends with "systemctl poweroff".
func TestSystemctlAndDBusClientsInGuest(t *testing.T) {
	res := runDBusGuest(t, dbusTestUnits(), dbusMainScript, true)
	out := strings.Join(res.ScriptOutput, "\n")
	if testing.Verbose() {
		t.Logf("script output:\n%s", out)
	}
	steps := parseSteps(res.ScriptOutput)

	t.Run("Poweroff", func(t *testing.T) {
		if !strings.Contains(out, "@@@ POWEROFF") {
			t.Fatalf("the script never reached the poweroff step")
		}
		if strings.Contains(out, "@@@ POWEROFF-RETURNED") {
			t.Errorf("systemctl poweroff returned instead of powering off:\n%s", res.Tail)
		}
		if res.ExitStatus != -1 || res.ShutdownAction != "poweroff" || !res.Clean {
			t.Errorf("after systemctl poweroff: script exit %d, shutdown %q clean=%v (%s)",
				res.ExitStatus, res.ShutdownAction, res.Clean, res.UncleanReason)
		}
	})
	t.Run("Private", func(t *testing.T) { checkPrivateSteps(t, steps, out) })
	t.Run("SystemBus", func(t *testing.T) { checkBusSteps(t, steps) })
	t.Run("Tools", func(t *testing.T) { checkToolSteps(t, steps) })
	t.Run("SystemdRun", func(t *testing.T) { checkSystemdRun(t, steps) })
	t.Run("GoSystemd", func(t *testing.T) { checkGoSystemd(t, steps) })
	t.Run("NodeExporter", func(t *testing.T) { checkNodeExporter(t, steps) })
}

func checkPrivateSteps(t *testing.T, steps map[string]stepResult, out string) {
	c := stepChecker{t, steps}
	if !strings.Contains(out, "private socket present") {
		t.Errorf("/run/systemd/private or /run/systemd/system missing in the guest")
	}
	c.okHas("version", `^systemd 252`)
	c.code("start-sleeper", 0)
	// The header, the columns in systemd's order, and the legend.
	c.okHas("list-units", `(?m)^\s*UNIT\s+LOAD\s+ACTIVE\s+SUB\s+(JOB\s+)?DESCRIPTION\s*$`,
		`(?m)^\s*sleeper\.service\s+loaded\s+active\s+running\s+Sleeping test service$`,
		`(?m)^\s*dbus\.service\s+loaded\s+active\s+running\s+D-Bus System Message Bus$`,
		`LOAD   = Reflects whether the unit definition was properly loaded\.`,
		`\d+ loaded units listed\. Pass --all to see loaded but inactive units, too\.`)
	c.lacks("list-units", `once\.service`) // inactive: only with --all
	c.okHas("list-units-all", `(?m)^\s*once\.service\s+loaded\s+inactive\s+dead\s+One-shot test$`,
		`(?m)^\s*multi-user\.target\s+loaded\s+active\s+active\s`, `\d+ loaded units listed\.$|\d+ loaded units listed\.\n`)
	c.okHas("list-units-type", `test\.target`, `multi-user\.target`)
	c.lacks("list-units-type", `\.service`)
	c.okHas("list-units-pattern", `sleeper\.service`, `once\.service`, `sockets\.target`)
	c.lacks("list-units-pattern", `fail\.service`, `dbus\.service`)
	c.code("start-fail", 1)
	c.has("start-fail", `Job for fail\.service failed because the control process exited with error code\.`)
	c.okHas("list-units-failed", `(?m)^\S*\s*fail\.service\s+loaded\s+failed\s+failed\s+Failing test$`)
	c.lacks("list-units-failed", `sleeper\.service`)
	c.okHas("list-unit-files", `(?m)^UNIT FILE\s+STATE\s+PRESET\s*$`, `(?m)^sleeper\.service\s+static`,
		`(?m)^enab\.service\s+disabled`, `\d+ unit files listed\.`)
	c.lacks("list-unit-files", `\.target`)
	c.okHas("status-sleeper", `(?m)^. sleeper\.service - Sleeping test service$`,
		`(?m)^\s+Loaded: loaded \(/etc/vigil/units/sleeper\.service; static\)$`,
		`(?m)^\s+Active: active \(running\) since .+ ago$`,
		`(?m)^\s+Main PID: \d+ \(sleep\)$`)
	c.code("status-fail", 3)
	c.has("status-fail", `(?m)^\s+Active: failed \(Result: exit-code\) since`,
		`(?m)^\s+Process: \d+ ExecStart=/bin/false \(code=exited, status=1/FAILURE\)$`)
	c.code("status-missing", 4)
	c.has("status-missing", `Unit nonexist\.service could not be found\.`)
	c.okHas("show-p", `(?m)^ActiveState=active$`, `(?m)^SubState=running$`, `(?m)^MainPID=[1-9]\d*$`,
		`(?m)^Id=sleeper\.service$`, `(?m)^Type=simple$`)
	c.okHas("show-value", `^active$`)
	c.okHas("show-all", `(?m)^ExecStart=\{ path=/bin/sleep ; argv\[\]=/bin/sleep 1000 ;`, `(?m)^ControlGroup=/`, `(?m)^FragmentPath=/etc/vigil/units/sleeper\.service$`)
	c.okHas("cat", `(?m)^# /etc/vigil/units/sleeper\.service$`, `exec-start = \["/bin/sleep", "1000"\]`)
	c.okHas("is-active-yes", `^active$`)
	c.code("is-active-no", 3)
	c.has("is-active-no", `^inactive$`)
	c.code("is-active-missing", 3)
	c.okHas("is-failed-yes", `^failed$`)
	c.code("is-failed-no", 1)
	c.has("is-failed-no", `^active$`)
	c.okHas("is-enabled-static", `^static$`)
	c.code("is-enabled-before", 1)
	c.has("is-enabled-before", `^disabled$`)
	c.okHas("enable", `Created symlink .*multi-user\.target\.wants/enab\.service`)
	c.okHas("enable-link", `enab\.service -> `)
	c.okHas("is-enabled-after", `^enabled$`)
	c.okHas("disable", `Removed .*multi-user\.target\.wants/enab\.service`)
	c.code("is-enabled-disabled", 1)
	c.code("start-once", 0)
	c.okHas("once-runs", `^ran$`)
	c.code("stop", 0)
	c.code("stopped", 3)
	c.code("start-noblock", 0)
	c.code("restart", 0)
	c.okHas("restart-state", `(?m)^ActiveState=active$`, `(?m)^SubState=running$`)
	c.code("reload", 0)
	c.okHas("reloads", `^reloaded$`)
	c.code("try-restart", 0)
	c.code("try-restart-inactive", 0)
	// try-restart leaves a stopped unit stopped.
	c.code("try-restart-inactive-state", 3)
	c.code("restart-noblock", 0)
	c.code("start-slow-noblock", 0)
	c.okHas("list-jobs", `(?m)^JOB\s+UNIT\s+TYPE\s+STATE\s*$`, `(?m)^\s*\d+\s+slow\.service\s+start\s+running\s*$`, `\d+ jobs? listed\.`)
	c.code("start-killme", 0)
	c.code("kill", 0)
	c.okHas("killed-state", `(?m)^ActiveState=(inactive|failed)$`)
	c.code("reset-failed", 0)
	c.code("after-reset-failed", 1)
	c.okHas("list-dependencies", `(?m)^test\.target$`, `(?m)^\s+sleeper\.service$`, `(?m)^\s+once\.service$`)
	c.code("daemon-reload", 0)
	c.okHas("added-status", `(?m)^LoadState=loaded$`, `(?m)^Description=Added before daemon-reload$`)
	c.code("start-added", 0)
}

func checkBusSteps(t *testing.T, steps map[string]stepResult) {
	c := stepChecker{t, steps}
	c.code("waitbus", 0)
	c.okHas("bus-root-list", `(?m)^\s*dbus\.service\s+loaded\s+active\s+running\s`, `(?m)^\s*once\.service\s+loaded\s`)
	c.code("bus-root-start", 0)
	c.code("bus-root-stop", 0)
	c.code("bus-root-is-active", 3)
	c.code("bus-root-start-fail", 1)
	c.has("bus-root-start-fail", `Job for fail\.service failed`)
	c.okHas("bus-user-id", `^1000$`)
	c.okHas("bus-user-list", `(?m)^\s*dbus\.service\s+loaded\s+active\s+running\s`, `(?m)^\s*once\.service\s+loaded\s`)
	// status of a failed unit exits 3, as for root.
	c.code("bus-user-status", 3)
	c.has("bus-user-status", `(?m)^. fail\.service - Failing test$`, `(?m)^\s+Active: failed`, `(?m)^. killme\.service - Service to kill$`)
	c.okHas("bus-user-show", `(?m)^once\.service$`)
	c.okHas("bus-user-is-active", `^active$`)
	for _, name := range []string{"bus-user-start", "bus-user-stop", "bus-user-dbus-send"} {
		s, ok := c.get(name)
		if !ok {
			continue
		}
		if s.code == 0 || !strings.Contains(s.out, "Access denied") && !strings.Contains(s.out, "AccessDenied") {
			t.Errorf("%s as uid 1000: exit %d, want an access denied error:\n%s", name, s.code, s.out)
		}
	}
}

func checkToolSteps(t *testing.T, steps map[string]stepResult) {
	if _, err := os.Stat("/usr/bin/busctl"); err == nil {
		c := stepChecker{t, steps}
		c.okHas("busctl-tree", `/org/freedesktop/systemd1\b`, `/org/freedesktop/systemd1/unit/sleeper_2eservice`)
		c.okHas("busctl-introspect", `(?m)^org\.freedesktop\.systemd1\.Manager\s+interface`,
			`(?m)^\.StartUnit\s+method\s+ss\s+o\s`, `(?m)^\.JobRemoved\s+signal\s+uoss\s`, `(?m)^\.Version\s+property\s+s\s+"`)
		c.okHas("busctl-introspect-unit", `(?m)^org\.freedesktop\.systemd1\.Service\s+interface`,
			`(?m)^\.MainPID\s+property\s+u\s`, `(?m)^org\.freedesktop\.systemd1\.Unit\s+interface`)
		c.okHas("busctl-get-property", `^s "`)
		c.okHas("busctl-get-unit-property", `^s "active"$`)
	}
	if _, err := os.Stat("/usr/bin/gdbus"); err == nil {
		c := stepChecker{t, steps}
		c.okHas("gdbus-introspect", `interface org\.freedesktop\.systemd1\.Manager \{`,
			`StartUnit\(in  s name,\s+in  s mode,\s+out o job\);`, `readonly s Version = '`)
	}
}

func checkSystemdRun(t *testing.T, steps map[string]stepResult) {
	if _, err := os.Stat("/usr/bin/systemd-run"); err != nil {
		skipOrFailWithoutTool(t, "/usr/bin/systemd-run")
	}
	c := stepChecker{t, steps}
	c.code("systemd-run", 0)
	c.has("systemd-run", `Running as unit: transient-test\.service`, `Finished with result: success`)
	c.okHas("systemd-run-file", `^transient-ran$`)
	c.code("systemd-run-fail", 3)
	c.has("systemd-run-fail", `Finished with result: exit-code`, `Main processes terminated with: code=exited/status=3`)
	c.okHas("systemd-run-scope", `Running scope as unit: scope-test\.scope`, `(?m)^0::/system\.slice/scope-test\.scope$`)
	c.okHas("link", `Created symlink /etc/vigil/units/linked\.service (→|->) /run/outside/linked\.service`)
	c.code("link-start", 0)
}

func checkGoSystemd(t *testing.T, steps map[string]stepResult) {
	c := stepChecker{t, steps}
	for _, name := range []string{"gosd-private", "gosd-system"} {
		c.okHas(name, `(?m)^gosd listunits count=[1-9]\d*$`,
			`(?m)^gosd unit dbus\.service loaded active running /org/freedesktop/systemd1/unit/dbus_2eservice$`,
			`(?m)^gosd start gosd-once\.service job=[1-9]\d* result=done$`,
			`(?m)^gosd start fail\.service job=[1-9]\d* result=failed$`,
			`(?m)^gosd prop Id=gosd-once\.service$`, `(?m)^gosd prop ActiveState=active$`,
			`(?m)^gosd prop SubState=exited$`, `(?m)^gosd prop FragmentPath=/etc/vigil/units/gosd-once\.service$`,
			`(?m)^gosd prop Type=oneshot$`, `(?m)^gosd prop Result=success$`)
	}
}

func checkNodeExporter(t *testing.T, steps map[string]stepResult) {
	if _, err := os.Stat("/usr/bin/prometheus-node-exporter"); err != nil {
		skipOrFailWithoutTool(t, "/usr/bin/prometheus-node-exporter")
	}
	c := stepChecker{t, steps}
	s, _ := c.get("node-exporter")
	if s.code != 0 {
		t.Errorf("no node_systemd metrics (exit %d):\n%s\nexporter log:\n%s", s.code, s.out, steps["node-exporter-log"].out)
		return
	}
	c.has("node-exporter",
		`(?m)^node_systemd_unit_state\{name="dbus\.service",state="active",type="notify"\} 1$`,
		`(?m)^node_systemd_unit_state\{name="dbus\.service",state="failed",type="notify"\} 0$`,
		`(?m)^node_systemd_unit_state\{name="sleeper\.service",state="inactive",type="simple"\} 1$`,
		`(?m)^node_systemd_unit_state\{name="killme\.service",state="(inactive|failed)",type="simple"\} 1$`,
		`(?m)^node_systemd_unit_state\{name="dbus\.socket",state="active",type=""\} 1$`,
		`(?m)^node_systemd_unit_state\{name="gosd-once\.service",state="active",type="oneshot"\} 1$`,
		`(?m)^node_systemd_units\{state="active"\} [1-9]\d*$`)
}

// TestSystemctlRebootInGuest: "systemctl reboot" as root over
// /run/systemd/private starts reboot.target (there is no logind), and PID 1
// finishes an ordered reboot (QEMU exits: -no-reboot).
func TestSystemctlRebootInGuest(t *testing.T) {
	script := "echo '@@@ REBOOT'\nsystemctl reboot\necho '@@@ REBOOT-RETURNED' $?\nexec sleep 600\n"
	res := runDBusGuest(t, map[string]string{}, script, true)
	out := strings.Join(res.ScriptOutput, "\n")
	if !strings.Contains(out, "@@@ REBOOT") {
		t.Fatalf("the script never reached systemctl reboot:\n%s", res.Tail)
	}
	if strings.Contains(out, "@@@ REBOOT-RETURNED") {
		t.Errorf("systemctl reboot returned instead of rebooting:\n%s", out)
	}
	if res.ShutdownAction != "reboot" || !res.Clean {
		t.Errorf("after systemctl reboot: shutdown %q clean=%v (%s)", res.ShutdownAction, res.Clean, res.UncleanReason)
	}
}

// skipOrFailWithoutTool skips a guest check whose client is not installed
// on the host, except where VM tests are required (CI installs every client
// with scripts/install-deps.sh, so a missing one there is a failure).
func skipOrFailWithoutTool(t testing.TB, path string) {
	t.Helper()
	if os.Getenv("VIGIL_REQUIRE_VM") != "" {
		t.Fatalf("%s is not installed (scripts/install-deps.sh) and VIGIL_REQUIRE_VM is set", path)
	}
	t.Skipf("%s is not installed (scripts/install-deps.sh)", path)
}
