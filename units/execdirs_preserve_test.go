package units

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRuntimeDirectoryPreserveAcrossAutoRestart: a service that fails
// twice and is restarted by restart = "on-failure" finds its runtime
// directory empty on every run with runtime-directory-preserve = "no"
// (systemd removes it whenever the service goes dead, automatic restarts
// included), finds what the previous run left with "restart" and "yes";
// after the last run the directory is gone but for "yes".
func TestRuntimeDirectoryPreserveAcrossAutoRestart(t *testing.T) {
	logDir := t.TempDir()
	// Each run notes whether the previous run's mark is still there, marks
	// the directory, and fails the first two times.
	unit := func(preserve string) string {
		logPath := filepath.Join(logDir, preserve)
		return fmt.Sprintf(`[service]
type = "simple"
restart = "on-failure"
restart-sec = "10ms"
runtime-directory = "rd-%[1]s"
runtime-directory-preserve = "%[1]s"
exec-start = ["/bin/sh", "-c", "if [ -e \"$RUNTIME_DIRECTORY/mark\" ]; then echo kept >> \"$0\"; else echo fresh >> \"$0\"; fi; touch \"$RUNTIME_DIRECTORY/mark\"; [ $(wc -l < \"$0\") -ge 3 ] && exit 0; exit 1", %[2]q]
`, preserve, logPath)
	}
	h, roots := execDirHarness(t, map[string]string{
		"no.service":      unit("no"),
		"restart.service": unit("restart"),
		"yes.service":     unit("yes"),
	})
	want := map[string]string{
		"no":      "fresh fresh fresh",
		"restart": "fresh kept kept",
		"yes":     "fresh kept kept",
	}
	for _, preserve := range []string{"no", "restart", "yes"} {
		name := preserve + ".service"
		logPath := filepath.Join(logDir, preserve)
		if _, why := h.start(name); why != "" {
			t.Logf("%s start: %s", name, why)
		}
		// Three runs, then the service ends dead (the last run succeeds).
		deadline := time.Now().Add(30 * time.Second)
		for {
			runs := strings.Fields(readFileIfAny(logPath))
			a, _ := h.state(name)
			if len(runs) >= 3 && a == string(StateInactive) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: runs %v, state %s after 30 s\n%s", name, runs, a, h.logText())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := strings.Join(strings.Fields(readFileIfAny(logPath)), " "); got != want[preserve] {
			t.Errorf("runtime-directory-preserve = %q: the runs found %q, want %q", preserve, got, want[preserve])
		}
		dir := filepath.Join(roots.Runtime, "rd-"+preserve)
		if gone := !exists(dir); gone != (preserve != "yes") {
			t.Errorf("runtime-directory-preserve = %q: directory gone after the last run = %v", preserve, gone)
		}
	}
}

// TestRuntimeDirectoryPreserveRestartThenStop: with "restart", a stop
// while the service waits for its automatic restart removes the directory
// (the unit will not start again).
func TestRuntimeDirectoryPreserveRestartThenStop(t *testing.T) {
	h, roots := execDirHarness(t, map[string]string{
		"waits.service": `[service]
type = "simple"
restart = "always"
restart-sec = "1h"
runtime-directory = "waits"
runtime-directory-preserve = "restart"
exec-start = ["/bin/sh", "-c", "touch \"$RUNTIME_DIRECTORY/mark\"; exit 1"]
`,
	})
	dir := filepath.Join(roots.Runtime, "waits")
	h.start("waits.service")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, sub := h.state("waits.service")
		if sub == "auto-restart" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no auto-restart within 30 s: %s\n%s", sub, h.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !exists(filepath.Join(dir, "mark")) {
		t.Fatalf("runtime-directory-preserve = restart: the directory went before the automatic restart")
	}
	h.stop("waits.service")
	if exists(dir) {
		t.Errorf("runtime-directory-preserve = restart: the directory outlived a stop during auto-restart")
	}
}

func readFileIfAny(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
