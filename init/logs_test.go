package pid1

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogConsoleEchoesOnlyItsUnits(t *testing.T) {
	dir := t.TempDir()
	units := filepath.Join(dir, "units")
	os.MkdirAll(filepath.Join(units, "multi-user.target.wants"), 0o755)
	write := func(name, content string) {
		os.WriteFile(filepath.Join(units, name), []byte(content), 0o644)
		os.Symlink("../"+name, filepath.Join(units, "multi-user.target.wants", name))
	}
	write("loud.service", "[service]\ntype = \"oneshot\"\nstandard-output = \"log+console\"\nexec-start = [\"/bin/sh\", \"-c\", \"echo loud-line; echo loud-err >&2\"]\n")
	write("quiet.service", "[service]\ntype = \"oneshot\"\nexec-start = [\"/bin/sh\", \"-c\", \"echo quiet-line\"]\n")
	console := &lockedBuffer{}
	vm, err := Start(context.Background(), Config{UnitPaths: []string{units}, RuntimeDir: filepath.Join(dir, "run"), Console: console, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string)
	go func() { done <- vm.Run(ctx) }()
	// Both units have run and their output has been read once both
	// streams of loud.service reached the console and quiet.service's line
	// reached its log: a loaded machine takes its time for either.
	quietLogged := func() bool {
		for _, l := range vm.logs.Tail("quiet.service", 10, time.Time{}) {
			if strings.Contains(l.Text, "quiet-line") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out := console.String()
		if strings.Contains(out, "loud-line\n") && strings.Contains(out, "loud-err\n") && quietLogged() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	out := console.String()
	if !strings.Contains(out, "loud-line\n") || !strings.Contains(out, "loud-err\n") {
		t.Errorf("log+console output missing on the console:\n%s", out)
	}
	if strings.Contains(out, "quiet-line") {
		t.Errorf("a plain log unit was echoed:\n%s", out)
	}
	var tail []string
	for _, l := range vm.logs.Tail("quiet.service", 10, time.Time{}) {
		tail = append(tail, l.Text)
	}
	if !strings.Contains(strings.Join(tail, "\n"), "quiet-line") {
		t.Errorf("quiet.service's output not in its log: %q", tail)
	}
}
