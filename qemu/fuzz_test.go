package qemu

import (
	"context"
	"testing"
)

func FuzzParseQMPMessage(f *testing.F) {
	f.Add([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`))
	f.Add([]byte(`{"return": {}, "id": "vigil-1"}`))
	f.Add([]byte(`{"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}, "id": "vigil-2"}`))
	f.Add([]byte(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`))
	f.Add([]byte(`{"id": 5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseQMPMessage(data)
		if err == nil && m.QMP == nil && m.Return == nil && m.Error == nil && m.Event == "" {
			t.Fatal("accepted a message of no kind")
		}
	})
}

func FuzzConsoleLines(f *testing.F) {
	f.Add([]byte("vigil: reached default target multi-user.target at uptime 1.000s (+0.100s after init exec)\r\nVIGIL-VM-SCRIPT-BEGIN\r\nhi\r\nVIGIL-VM-SCRIPT-EXIT 0\r\n"))
	f.Add([]byte("partial"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newConsole()
		half := len(data) / 2
		_, _ = c.Write(data[:half])
		_, _ = c.Write(data[half:])
		c.close()
		if got := c.text(); len(got) > len(data)+1 {
			t.Fatalf("console text longer than the input: %d > %d", len(got), len(data))
		}
		_, _, _ = c.waitLine(context.Background(), 0, func(l string) bool {
			_ = reachedRE.FindStringSubmatch(l)
			_ = shutdownRE.FindStringSubmatch(l)
			return false
		})
	})
}
