package dbus

import (
	"math"
	"testing"
)

// TestTimeoutCleanUSec: the Service and Socket interfaces' TimeoutCleanUSec
// is timeout-clean in µs, and UINT64_MAX (infinity) by default, as in
// systemd 252.
func TestTimeoutCleanUSec(t *testing.T) {
	h := newHarness(t, map[string]string{
		"dflt.service": "[service]\nexec-start = \"/bin/true\"\n",
		"set.service":  "[service]\nexec-start = \"/bin/true\"\ntimeout-clean = \"2min\"\n",
		"set.socket":   "[socket]\nlisten-stream = \"/run/vigil-test-timeout-clean.sock\"\ntimeout-clean = \"1.5s\"\n",
	})
	conn := godbusClient(t, h.sock)
	for _, c := range []struct {
		unit, iface string
		want        uint64
	}{
		{"dflt.service", ifaceService, math.MaxUint64},
		{"set.service", ifaceService, 120_000_000},
		{"set.socket", "org.freedesktop.systemd1.Socket", 1_500_000},
	} {
		v, err := conn.Object(busName, UnitPath(c.unit)).GetProperty(c.iface + ".TimeoutCleanUSec")
		if err != nil {
			t.Errorf("%s TimeoutCleanUSec: %v", c.unit, err)
			continue
		}
		if got, ok := v.Value().(uint64); !ok || got != c.want {
			t.Errorf("%s TimeoutCleanUSec = %v (%T), want %d", c.unit, v.Value(), v.Value(), c.want)
		}
	}
}
