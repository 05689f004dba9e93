package qemu

import (
	"context"
	"strings"
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

func FuzzParseMemoryLines(f *testing.F) {
	f.Add("Rss:                4312 kB\nPss:                4100 kB\nVmRSS:\t    4312 kB\nVmHWM:\t    4400 kB")
	f.Add("Rss: -1 kB\nPss: x kB\nVmRSS: 1 MB\nVmHWM:")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		mem, err := ParseMemoryLines(strings.Split(text, "\n"))
		if err != nil {
			return
		}
		for _, name := range benchMemoryFields {
			if kb, ok := mem[name]; !ok || kb < 0 {
				t.Fatalf("accepted output without a valid %s: %v", name, mem)
			}
		}
	})
}
