package dbus

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// benchmarkSystemctl runs the real systemctl 252 against a server process
// with the guest benchmark's unit set (a trivial oneshot and 75 targets)
// and reports the server's CPU time per command, read from its threads'
// schedstat: the share of a command's wall time that is PID 1's. Set
// VIGIL_DBUS_TEST_CPUPROFILE=FILE to profile the server.
func benchmarkSystemctl(b *testing.B, args ...string) {
	files := map[string]string{"noop.service": "[unit]\nstart-limit-interval = \"0\"\n[service]\ntype = \"oneshot\"\nexec-start = \"/bin/true\"\n"}
	for i := range 75 {
		files[fmt.Sprintf("bench%02d.target", i)] = "[unit]\ndescription = \"benchmark target\"\n"
	}
	var env []string
	if p := os.Getenv(profileEnv); p != "" {
		env = append(env, profileEnv+"="+p)
	}
	h := newProcHarness(b, files, env...)
	if out, code := h.systemctl(args...); code != 0 {
		b.Fatalf("systemctl %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	before := threadsCPU(b, h.pid)
	for b.Loop() {
		if out, code := h.systemctl(args...); code != 0 {
			b.Fatalf("systemctl %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
	}
	b.ReportMetric(float64(threadsCPU(b, h.pid)-before)/1e3/float64(b.N), "server-µs/op")
}

// threadsCPU is the run time of all of pid's threads in nanoseconds.
func threadsCPU(b *testing.B, pid int) int64 {
	b.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		b.Skipf("no schedstat for %d: %v", pid, err)
	}
	var sum int64
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // a thread that ended: its time is lost, a small error
		}
		f := strings.Fields(string(data))
		if len(f) > 0 {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				b.Fatalf("%s: %v", path, err)
			}
			sum += n
		}
	}
	return sum
}

func BenchmarkSystemctlDaemonReload(b *testing.B) { benchmarkSystemctl(b, "daemon-reload") }
func BenchmarkSystemctlStart(b *testing.B)        { benchmarkSystemctl(b, "start", "noop.service") }
func BenchmarkSystemctlListUnits(b *testing.B)    { benchmarkSystemctl(b, "list-units") }
func BenchmarkSystemctlIsSystemRunning(b *testing.B) {
	benchmarkSystemctl(b, "is-system-running")
}
