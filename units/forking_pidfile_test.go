package units

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"vigil/units/api"
)

// forkingModes runs a forking-service test without cgroups (sessions
// stand in) and with a cgroup tree of the host (skipped without one).
func forkingModes(t *testing.T, files map[string]string, test func(t *testing.T, h *harness)) {
	t.Run("sessions", func(t *testing.T) { test(t, newHarness(t, files)) })
	t.Run("cgroup", func(t *testing.T) {
		h, _ := newCgroupHarness(t, files)
		test(t, h)
	})
}

// waitDead waits until pid is gone.
func waitDead(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); pidAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("%s (PID %d) still alive", what, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, path)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

// The start command exits at once; the daemon writes its PID file a second
// later. systemd waits for it (inotify) instead of failing the start.
func TestForkingPIDFileWrittenAfterParentExits(t *testing.T) {
	forkingModes(t, map[string]string{
		"late.service": `[service]
type = "forking"
pid-file = "@DIR@/late.pid"
exec-start = ["/bin/sh", "-c", "(setsid /bin/sh -c 'sleep 1; echo $$$$ > @DIR@/late.pid; exec sleep 60' </dev/null >/dev/null 2>&1 &) ; exit 0"]
timeout-start = "30s"
timeout-stop = "5s"
`,
	}, func(t *testing.T, h *harness) {
		if res, why := h.start("late.service"); res != api.ResultDone {
			t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
		}
		// The start job ended only once the file named the daemon.
		pid := readPID(t, h.path("late.pid"))
		if got := h.prop("late.service", "MainPID"); got != strconv.Itoa(pid) {
			t.Fatalf("MainPID %s, want %d from the PID file\n%s", got, pid, h.logText())
		}
		if a, s := h.state("late.service"); a != "active" || s != "running" {
			t.Fatalf("state %s/%s", a, s)
		}
		if !strings.Contains(h.logText(), "names main PID "+strconv.Itoa(pid)) {
			t.Errorf("log does not say the PID file was read late:\n%s", h.logText())
		}
		if res, _ := h.stop("late.service"); res != api.ResultDone {
			t.Fatal("stop failed")
		}
		waitDead(t, pid, "daemon after stop")
	})
}

// A PID file written through a temporary file and a rename, in a
// directory the daemon creates itself, is found too.
func TestForkingPIDFileInDirectoryCreatedLate(t *testing.T) {
	h := newHarness(t, map[string]string{
		"dir.service": `[service]
type = "forking"
pid-file = "@DIR@/run/sub/d.pid"
exec-start = ["/bin/sh", "-c", "(/bin/sh -c 'sleep 0.5; mkdir -p @DIR@/run/sub; sleep 0.3; echo $$$$ > @DIR@/run/sub/d.tmp; mv @DIR@/run/sub/d.tmp @DIR@/run/sub/d.pid; exec sleep 60' </dev/null >/dev/null 2>&1 &) ; exit 0"]
timeout-start = "30s"
`,
	})
	os.RemoveAll(h.path("run"))
	if res, why := h.start("dir.service"); res != api.ResultDone {
		t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
	}
	pid := readPID(t, h.path("run/sub/d.pid"))
	if got := h.prop("dir.service", "MainPID"); got != strconv.Itoa(pid) {
		t.Fatalf("MainPID %s, want %d", got, pid)
	}
}

// The daemon never writes its PID file: the start fails at timeout-start
// with result timeout, and the daemon is killed.
func TestForkingPIDFileNeverWrittenTimesOut(t *testing.T) {
	forkingModes(t, map[string]string{
		"mute.service": `[service]
type = "forking"
pid-file = "@DIR@/mute.pid"
exec-start = ["/bin/sh", "-c", "(/bin/sh -c 'echo $$$$ > @DIR@/mute.real; exec sleep 300' </dev/null >/dev/null 2>&1 &) ; while [ ! -s @DIR@/mute.real ]; do sleep 0.05; done"]
# The missing file is logged when the script ends, which took over 1.5 s
# under load: the timeout must come after that.
timeout-start = "5s"
timeout-stop = "5s"
`,
	}, func(t *testing.T, h *harness) {
		res, _ := h.start("mute.service")
		if res != api.ResultFailed {
			t.Fatalf("start: %s, want failed\n%s", res, h.logText())
		}
		if r := h.prop("mute.service", "Result"); r != "timeout" {
			t.Errorf("result %s, want timeout\n%s", r, h.logText())
		}
		h.waitState("mute.service", "failed", 30*time.Second)
		waitDead(t, readPID(t, h.path("mute.real")), "daemon that never wrote its PID file")
		if !strings.Contains(h.logText(), "not readable (yet?) after start") {
			t.Errorf("log does not say the PID file was missing:\n%s", h.logText())
		}
	})
}

// With a cgroup, a unit whose processes are all gone cannot write the
// PID file any more: systemd fails it at once with result protocol.
func TestForkingPIDFileDaemonGoneFailsWithProtocol(t *testing.T) {
	h, _ := newCgroupHarness(t, map[string]string{
		"gone.service": `[service]
type = "forking"
pid-file = "@DIR@/gone.pid"
exec-start = ["/bin/sh", "-c", "(sleep 0.5 &) ; exit 0"]
timeout-start = "60s"
`,
	})
	begin := time.Now()
	if res, _ := h.start("gone.service"); res != api.ResultFailed {
		t.Fatalf("start: %s, want failed\n%s", res, h.logText())
	}
	if r := h.prop("gone.service", "Result"); r != "protocol" {
		t.Errorf("result %s, want protocol\n%s", r, h.logText())
	}
	if !strings.Contains(h.logText(), "Daemon never wrote its PID file. Failing.") {
		t.Errorf("log:\n%s", h.logText())
	}
	if took := time.Since(begin); took > 50*time.Second {
		t.Errorf("failed only after %v: the empty cgroup should have ended the wait", took)
	}
}

// outsideProcess starts a process that belongs to no unit.
func outsideProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The harness's reaper collects it; Wait would race with it.
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd.Process.Pid
}

// A PID file naming a process outside the unit is refused unless the
// file is owned by root and reached through no unsafe symlink (systemd's
// rules since v240): the unit then waits on, and fails at timeout-start.
func TestForkingPIDFileOutsideUnit(t *testing.T) {
	cases := []struct {
		name, write, pidFile string
		accepted             bool
		logLine              string
	}{
		{name: "not-root-owned", pidFile: "o.pid",
			write:   "echo %d > @DIR@/o.tmp; chown 65534 @DIR@/o.tmp; mv @DIR@/o.tmp @DIR@/o.pid",
			logLine: "does not belong to service, and PID file is not owned by root. Refusing."},
		{name: "root-owned", pidFile: "o.pid", accepted: true,
			write:   "echo %d > @DIR@/o.tmp; mv @DIR@/o.tmp @DIR@/o.pid",
			logLine: "since PID file is owned by root"},
		{name: "unsafe-symlink", pidFile: "link.pid",
			write:   "echo %d > @DIR@/o.pid; ln -s @DIR@/o.pid @DIR@/link.tmp; chown -h 65534 @DIR@/link.tmp; mv @DIR@/link.tmp @DIR@/link.pid",
			logLine: "acquired through unsafe symlink chain"},
	}
	for _, c := range cases {
		for _, mode := range []string{"sessions", "cgroup"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				// Each run has its own: an accepted one is stopped (killed)
				// with the unit.
				outside := outsideProcess(t)
				// The refusal is logged when the script has ended, which a
				// loaded machine may take seconds to reach (a 1.5 s bound
				// timed out an accepted start); a refused start then waits
				// for the whole timeout, an accepted one ends at once.
				timeout := "5s"
				if c.accepted {
					timeout = "30s"
				}
				files := map[string]string{"out.service": fmt.Sprintf(`[service]
type = "forking"
pid-file = "@DIR@/%s"
exec-start = ["/bin/sh", "-c", "(/bin/sh -c 'echo $$$$ > @DIR@/own; exec sleep 300' </dev/null >/dev/null 2>&1 &) ; sleep 0.2; %s"]
timeout-start = "%s"
timeout-stop = "5s"
`, c.pidFile, fmt.Sprintf(c.write, outside), timeout)}
				var h *harness
				if mode == "cgroup" {
					h, _ = newCgroupHarness(t, files)
				} else {
					h = newHarness(t, files)
				}
				res, _ := h.start("out.service")
				log := h.logText()
				if !strings.Contains(log, c.logLine) {
					t.Errorf("log lacks %q:\n%s", c.logLine, log)
				}
				if c.accepted {
					if res != api.ResultDone {
						t.Fatalf("start: %s\n%s", res, log)
					}
					if got := h.prop("out.service", "MainPID"); got != strconv.Itoa(outside) {
						t.Errorf("MainPID %s, want %d", got, outside)
					}
					return
				}
				if res != api.ResultFailed {
					t.Fatalf("start: %s, want failed\n%s", res, log)
				}
				if r := h.prop("out.service", "Result"); r != "timeout" {
					t.Errorf("result %s, want timeout", r)
				}
				if got := h.prop("out.service", "MainPID"); got != "0" {
					t.Errorf("MainPID %s after the refusal", got)
				}
				if !pidAlive(outside) {
					t.Errorf("the outside process %d was killed with the unit", outside)
				}
				waitDead(t, readPID(t, h.path("own")), "the unit's own process")
			})
		}
	}
}

// Without pid-file, guess-main-pid takes the unit's only process whose
// parent is the manager: a daemon's worker is no candidate.
func TestForkingGuessMainPIDIgnoresWorkers(t *testing.T) {
	forkingModes(t, map[string]string{
		"guess.service": `[service]
type = "forking"
exec-start = ["/bin/sh", "-c", "(/bin/sh -c 'sleep 300 & echo $$! > @DIR@/worker; echo $$$$ > @DIR@/master; wait' </dev/null >/dev/null 2>&1 &) ; while [ ! -s @DIR@/master ]; do sleep 0.05; done"]
timeout-stop = "5s"
`,
	}, func(t *testing.T, h *harness) {
		if res, why := h.start("guess.service"); res != api.ResultDone {
			t.Fatalf("start: %s (%s)\n%s", res, why, h.logText())
		}
		master, worker := readPID(t, h.path("master")), readPID(t, h.path("worker"))
		if !pidAlive(worker) {
			t.Fatalf("worker %d not running", worker)
		}
		if got := h.prop("guess.service", "MainPID"); got != strconv.Itoa(master) {
			t.Fatalf("MainPID %s, want the master %d (worker %d)\n%s", got, master, worker, h.logText())
		}
		// The guessed main process is supervised: its death ends the unit.
		if err := killPID(master); err != nil {
			t.Fatal(err)
		}
		h.waitState("guess.service", "failed", 30*time.Second)
		waitDead(t, worker, "worker after the main process died")
	})
}
