package units

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSlowJobsAreAnnouncedWithTheirLimit(t *testing.T) {
	console := &syncBuffer{}
	h := newHarnessWith(t, map[string]string{
		"slow.service": "[unit]\ndescription = \"Slow Thing\"\n[service]\nexec-start-pre = \"/bin/sleep 1\"\nexec-start = \"/bin/sleep 60\"\ntimeout-start = \"20s\"\ntimeout-stop = \"1min 30s\"\n",
	}, func(o *Options) {
		o.Console = console
		o.SlowJobAfter = 300 * time.Millisecond
	})
	if res, _ := h.start("slow.service"); res != "done" {
		t.Fatalf("start: %s", res)
	}
	out := console.String()
	if !strings.Contains(out, "A start job is running for Slow Thing (") || !strings.Contains(out, " / 20s)") {
		t.Errorf("no announcement of the slow start job:\n%s", out)
	}
	if strings.Contains(out, "stop job") {
		t.Errorf("a stop job was announced during a start:\n%s", out)
	}
	if !strings.Contains(out, "Started Slow Thing.") {
		t.Errorf("no started line:\n%s", out)
	}
	before := strings.Count(console.String(), "job is running")
	time.Sleep(time.Second)
	if after := strings.Count(console.String(), "job is running"); after != before {
		t.Errorf("announcements went on after the job finished (%d -> %d)", before, after)
	}
}

// While a unit writes to the console, slow jobs are not announced there
// (systemd's manager_ref_console): the lines would break into its output.
func TestSlowJobsNotAnnouncedOverAConsoleUnit(t *testing.T) {
	console := &syncBuffer{}
	tty := t.TempDir() + "/tty"
	h := newHarnessWith(t, map[string]string{
		"slow.service":  "[unit]\ndescription = \"Slow Thing\"\n[service]\nexec-start-pre = \"/bin/sleep 1\"\nexec-start = \"/bin/sleep 60\"\n",
		"shell.service": "[service]\nexec-start = \"/bin/sleep 60\"\nstandard-output = \"tty\"\ntty-path = \"" + tty + "\"\n",
	}, func(o *Options) {
		o.Console = console
		o.SlowJobAfter = 300 * time.Millisecond
	})
	if err := os.WriteFile(tty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if res, _ := h.start("shell.service"); res != "done" {
		t.Fatalf("start shell: %s", res)
	}
	if res, _ := h.start("slow.service"); res != "done" {
		t.Fatalf("start slow: %s", res)
	}
	out := console.String()
	if strings.Contains(out, "job is running") {
		t.Errorf("a slow job was announced while shell.service had the console:\n%s", out)
	}
	if !strings.Contains(out, "Started Slow Thing.") {
		t.Errorf("no started line:\n%s", out)
	}
}
