package pid1

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// dbusSystemConf is a system bus configuration for a guest without the
// messagebus user: the daemon stays root and lets everyone talk.
const dbusSystemConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// Debian's dbus-daemon, started through dbus.socket on the first client
// (socket activation with LISTEN_FDS, readiness by sd_notify), serves the
// system bus in the guest: dbus-send's ListNames is answered.
func TestDBusSocketActivationInGuest(t *testing.T) {
	skipWithoutVM(t)
	for _, p := range []string{"/usr/bin/dbus-daemon", "/usr/bin/dbus-send"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed (package dbus)", p)
		}
	}
	units := map[string]string{
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
	}
	script := `
set -e
initctl is-active dbus.socket
echo "service before: $(initctl is-active dbus.service || true)"
test -S /run/dbus/system_bus_socket
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket
dbus-send --system --dest=org.freedesktop.DBus --print-reply /org/freedesktop/DBus org.freedesktop.DBus.ListNames
echo "service after: $(initctl is-active dbus.service)"
initctl show dbus.socket | grep -E '^(SubState|Listen|Triggers)='
initctl status dbus.service | head -n 12 || true
`
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := qemu.RunScript(ctx, qemu.RunConfig{
		Image: initramfs.Spec{
			UnitDirs: []string{writeUnits(t, units)},
			Adds: []initramfs.Addition{
				{Host: "/usr/bin/dbus-daemon", Guest: "/usr/bin/dbus-daemon"},
				{Host: "/usr/bin/dbus-send", Guest: "/usr/bin/dbus-send"},
			},
			Files: []initramfs.File{
				{Path: "/usr/share/dbus-1/system.conf", Data: []byte(dbusSystemConf), Mode: 0o644},
				{Path: "/etc/machine-id", Data: []byte("0123456789abcdef0123456789abcdef\n"), Mode: 0o444},
			},
		},
		Script:  script,
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
		"service before: inactive",
		`string "org.freedesktop.DBus"`,
		"service after: active",
		"SubState=running",
		"Listen=/run/dbus/system_bus_socket (Stream)",
		"Triggers=dbus.service",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("script output lacks %q:\n%s", want, out)
		}
	}
}
