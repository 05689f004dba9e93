package units

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"vigil/observer/notify"
	"vigil/units/api"
)

// needSystemdNotify skips when Debian's systemd-notify is not installed.
func needSystemdNotify(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/systemd-notify"); err != nil {
		t.Skip("systemd-notify (package systemd) is not installed")
	}
}

// startAsync enqueues a start and returns a channel with its result.
func (h *harness) startAsync(name string) <-chan string {
	ch := make(chan string, 1)
	h.do(func() {
		j, err := h.m.Enqueue(name, api.JobStart, api.ModeReplace)
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		j.OnDone(func(j *Job) { ch <- j.Result + " " + j.Reason })
	})
	return ch
}

func (h *harness) notifyStats() NotifyStats {
	var st NotifyStats
	h.do(func() { st = h.m.NotifyStats() })
	return st
}

// A service of type notify running Debian's systemd-notify is active only
// once the script has said READY=1, and shows its STATUS= text.
func TestNotifyReadyFromSystemdNotify(t *testing.T) {
	needSystemdNotify(t)
	h := newHarness(t, map[string]string{
		"slow.service": `[service]
type = "notify"
exec-start = ["/bin/sh", "-c", "sleep 0.8; systemd-notify --ready --status='Serving 3 clients' ERRNO=5 BUSERROR=org.freedesktop.DBus.Error.Failed; exec sleep 60"]
`,
	})
	began := time.Now()
	done := h.startAsync("slow.service")
	// Before READY=1 the unit is activating/start; how soon the job runs
	// on a loaded machine is no concern of this test.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		a, s := h.state("slow.service")
		if a == "activating" && s == "start" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before READY=1: %s/%s, want activating/start", a, s)
		}
	}
	select {
	case res := <-done:
		if !strings.HasPrefix(res, api.ResultDone) {
			t.Fatalf("start: %s\n%s", res, h.logText())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("start job did not finish")
	}
	if took := time.Since(began); took < 700*time.Millisecond {
		t.Errorf("active after %v, before the script said READY=1", took)
	}
	st := h.status("slow.service")
	if st.Active != "active" || st.Sub != "running" || st.StatusText != "Serving 3 clients" {
		t.Errorf("status: %s/%s %q", st.Active, st.Sub, st.StatusText)
	}
	if v := h.prop("slow.service", "StatusText"); v != "Serving 3 clients" {
		t.Errorf("show StatusText = %q", v)
	}
	if e, b := h.prop("slow.service", "StatusErrno"), h.prop("slow.service", "StatusBusError"); e != "5" || b != "org.freedesktop.DBus.Error.Failed" {
		t.Errorf("StatusErrno %q StatusBusError %q", e, b)
	}
	if v := h.prop("slow.service", "NotifyAccess"); v != "main" {
		t.Errorf("NotifyAccess = %q, want main (the default of type notify)", v)
	}
}

// A notify service whose main process exits before READY=1 fails: with
// result protocol when it exited 0, exit-code otherwise.
func TestNotifyExitBeforeReady(t *testing.T) {
	h := newHarness(t, map[string]string{
		"quiet.service":  "[service]\ntype = \"notify\"\nexec-start = \"/bin/true\"\n",
		"broken.service": "[service]\ntype = \"notify\"\nexec-start = [\"/bin/sh\", \"-c\", \"exit 3\"]\n",
	})
	if res, _ := h.start("quiet.service"); res != api.ResultFailed {
		t.Errorf("quiet.service: %s, want failed", res)
	}
	if r := h.prop("quiet.service", "Result"); r != "protocol" {
		t.Errorf("quiet.service result %q, want protocol", r)
	}
	if res, _ := h.start("broken.service"); res != api.ResultFailed {
		t.Errorf("broken.service: %s, want failed", res)
	}
	if r := h.prop("broken.service", "Result"); r != "exit-code" {
		t.Errorf("broken.service result %q, want exit-code", r)
	}
}

// Messages from processes of no unit, from a unit whose notify-access
// refuses them, and datagrams above the size limit change nothing and
// are counted.
func TestNotifyStrangersIgnored(t *testing.T) {
	needSystemdNotify(t)
	h := newHarness(t, map[string]string{
		"waits.service": `[service]
type = "notify"
exec-start = ["/bin/sh", "-c", "exec sleep 60"]
`,
		// notify-access none: it gets no NOTIFY_SOCKET, so it is told
		// the address, and still must not be heard.
		"meddler.service": `[service]
exec-start = ["/bin/sh", "-c", "systemd-notify --ready --status=meddling; exec sleep 60"]
environment = ["NOTIFY_SOCKET=@DIR@/run/notify"]
`,
	})
	done := h.startAsync("waits.service")
	if res, why := h.start("meddler.service"); res != api.ResultDone {
		t.Fatalf("meddler: %s %s", res, why)
	}
	// The test process is a stranger: it belongs to no unit. It speaks
	// through go-systemd, as a daemon would.
	addr := h.m.NotifySocket()
	t.Setenv("NOTIFY_SOCKET", addr)
	if sent, err := daemon.SdNotify(false, "READY=1\nSTATUS=stranger"); !sent || err != nil {
		t.Fatalf("sd_notify: sent=%v %v", sent, err)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	big := "READY=1\nSTATUS=" + strings.Repeat("x", 5000)
	if _, err := conn.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := h.notifyStats()
		if st.Unattributed >= 1 && st.Refused >= 1 && st.Socket.Oversized >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejections not counted: %+v\n%s", st, h.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a, s := h.state("waits.service"); a != "activating" {
		t.Errorf("waits.service: %s/%s after messages not its own, want activating", a, s)
	}
	if st := h.status("waits.service"); st.StatusText != "" {
		t.Errorf("waits.service took a stranger's status %q", st.StatusText)
	}
	if st := h.status("meddler.service"); st.StatusText != "" {
		t.Errorf("meddler.service took a status %q despite notify-access none", st.StatusText)
	}
	if !strings.Contains(h.logText(), "belongs to no unit") || !strings.Contains(h.logText(), "reception is disabled") {
		t.Errorf("rejections not logged:\n%s", h.logText())
	}
	h.stop("waits.service")
	<-done
}

// A service that stops pinging the watchdog gets SIGABRT, result
// watchdog, and is restarted per restart = on-watchdog; one without a
// restart policy stays failed with result watchdog.
func TestWatchdogRestart(t *testing.T) {
	needSystemdNotify(t)
	script := `echo $$WATCHDOG_USEC $$WATCHDOG_PID $$$$ >> @DIR@/NAME.runs; for i in 1 2 3; do systemd-notify WATCHDOG=1; sleep 0.15; done; exec sleep 60`
	unit := func(name, restart string) string {
		return `[service]
exec-start = ["/bin/sh", "-c", "` + strings.ReplaceAll(script, "NAME", name) + `"]
watchdog-sec = "600ms"
restart = "` + restart + `"
restart-sec = "100ms"
`
	}
	h := newHarness(t, map[string]string{
		"pinger.service": unit("pinger", "on-watchdog"),
		"once.service":   unit("once", "no"),
	})
	for _, n := range []string{"pinger.service", "once.service"} {
		if res, why := h.start(n); res != api.ResultDone {
			t.Fatalf("start %s: %s %s", n, res, why)
		}
	}
	// 3 pings 150 ms apart keep it alive for 450 ms + 600 ms; then it
	// is aborted and comes back.
	deadline := time.Now().Add(15 * time.Second)
	for {
		runs := strings.Split(strings.TrimSpace(readFileOr(h.path("pinger.runs"))), "\n")
		if len(runs) >= 2 {
			for _, r := range runs {
				f := strings.Fields(r)
				if len(f) != 3 || f[0] != "600000" || f[1] != f[2] {
					t.Errorf("WATCHDOG_USEC WATCHDOG_PID $$ = %q, want 600000 and the PID twice", r)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pinger.service was not restarted: runs %q\n%s", runs, h.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := h.prop("pinger.service", "NRestarts"); n == "0" {
		t.Errorf("NRestarts = %s", n)
	}
	h.waitState("once.service", "failed", 10*time.Second)
	if r := h.prop("once.service", "Result"); r != "watchdog" {
		t.Errorf("once.service result %q, want watchdog", r)
	}
	if st := h.status("once.service"); st.ExitStatus != "signal=ABRT" {
		t.Errorf("once.service exit %q, want signal=ABRT (watchdog-signal)", st.ExitStatus)
	}
	if !strings.Contains(h.logText(), "Watchdog timeout") {
		t.Errorf("no watchdog timeout in the log:\n%s", h.logText())
	}
}

// EXTEND_TIMEOUT_USEC= keeps a slow start from timing out.
func TestNotifyExtendTimeout(t *testing.T) {
	needSystemdNotify(t)
	h := newHarness(t, map[string]string{
		"patient.service": `[service]
type = "notify"
timeout-start = "2s"
exec-start = ["/bin/sh", "-c", "systemd-notify EXTEND_TIMEOUT_USEC=20000000; sleep 3; systemd-notify --ready; exec sleep 60"]
`,
		"hasty.service": `[service]
type = "notify"
timeout-start = "700ms"
exec-start = ["/bin/sh", "-c", "sleep 1.2; systemd-notify --ready; exec sleep 60"]
`,
	})
	if res, why := h.start("patient.service"); res != api.ResultDone {
		t.Errorf("patient.service: %s %s\n%s", res, why, h.logText())
	}
	if res, _ := h.start("hasty.service"); res != api.ResultFailed {
		t.Errorf("hasty.service: %s, want failed (timeout)", res)
	}
	if r := h.prop("hasty.service", "Result"); r != "timeout" {
		t.Errorf("hasty.service result %q", r)
	}
}

// RELOADING=1 and READY=1 drive a reload; STOPPING=1 takes the unit to
// deactivating, and it ends when the process does.
func TestNotifyReloadingAndStopping(t *testing.T) {
	needSystemdNotify(t)
	h := newHarness(t, map[string]string{
		"cycle.service": `[service]
type = "notify"
exec-start = ["/bin/sh", "-c", "systemd-notify --ready; while [ ! -e @DIR@/reload ]; do sleep 0.05; done; systemd-notify RELOADING=1; while [ ! -e @DIR@/reloaded ]; do sleep 0.05; done; systemd-notify --ready; while [ ! -e @DIR@/stop ]; do sleep 0.05; done; systemd-notify STOPPING=1; while [ ! -e @DIR@/stopped ]; do sleep 0.05; done"]
`,
	})
	if res, why := h.start("cycle.service"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	// The service stays in each state until the test has seen it: a
	// loaded machine's poll can miss a short window.
	os.WriteFile(h.path("reload"), nil, 0o644)
	h.waitState("cycle.service", "reloading", 30*time.Second)
	os.WriteFile(h.path("reloaded"), nil, 0o644)
	h.waitState("cycle.service", "active", 30*time.Second)
	os.WriteFile(h.path("stop"), nil, 0o644)
	h.waitState("cycle.service", "deactivating", 30*time.Second)
	os.WriteFile(h.path("stopped"), nil, 0o644)
	h.waitState("cycle.service", "inactive", 30*time.Second)
	if r := h.prop("cycle.service", "Result"); r != "success" {
		t.Errorf("result %q", r)
	}
}

// notify-reload (systemd 253): a reload signals SIGHUP and waits for the
// service's READY=1.
func TestNotifyReloadType(t *testing.T) {
	needSystemdNotify(t)
	h := newHarness(t, map[string]string{
		"hup.service": `[service]
type = "notify-reload"
exec-start = ["/bin/sh", "-c", "trap 'systemd-notify RELOADING=1; echo hup >> @DIR@/hups; sleep 0.3; systemd-notify --ready' HUP; systemd-notify --ready; while :; do sleep 0.05; done"]
`,
	})
	if res, why := h.start("hup.service"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	began := time.Now()
	if res, why := h.job("hup.service", api.JobReload, ""); res != api.ResultDone {
		t.Fatalf("reload: %s %s\n%s", res, why, h.logText())
	}
	if took := time.Since(began); took < 250*time.Millisecond {
		t.Errorf("reload finished after %v, before the service's READY=1", took)
	}
	if got := readFileOr(h.path("hups")); got != "hup\n" {
		t.Errorf("hups = %q", got)
	}
}

func readFileOr(p string) string {
	data, _ := os.ReadFile(p)
	return string(data)
}

// notify-access = all admits any process of the unit: with a cgroup its
// members, without one the members of its session. The READY=1 here
// comes from systemd-notify run by a child shell, not the main process.
func TestNotifyAccessAll(t *testing.T) {
	needSystemdNotify(t)
	files := map[string]string{
		"family.service": `[service]
type = "notify"
notify-access = "all"
exec-start = ["/bin/sh", "-c", "sh -c 'sleep 0.2; systemd-notify --ready --status=child' & exec sleep 60"]
`,
		"strict.service": `[service]
type = "notify"
timeout-start = "5min"
exec-start = ["/bin/sh", "-c", "sh -c 'sleep 0.2; systemd-notify --ready --status=child' & exec sleep 60"]
`,
	}
	for _, mode := range []string{"session", "cgroup"} {
		t.Run(mode, func(t *testing.T) {
			var h *harness
			if mode == "cgroup" {
				h, _ = newCgroupHarness(t, files)
			} else {
				h = newHarness(t, files)
			}
			if res, why := h.start("family.service"); res != api.ResultDone {
				t.Fatalf("family.service: %s %s\n%s", res, why, h.logText())
			}
			if st := h.status("family.service"); st.StatusText != "child" {
				t.Errorf("status %q", st.StatusText)
			}
			// notify-access main (type notify's default) refuses the child:
			// the start stays activating after the refusal. (A short
			// start timeout instead made the test depend on the child
			// sending before it on a loaded machine.)
			h.do(func() {
				if _, err := h.m.Enqueue("strict.service", api.JobStart, api.ModeReplace); err != nil {
					t.Errorf("enqueue strict.service: %v", err)
				}
			})
			deadline := time.Now().Add(30 * time.Second)
			for h.notifyStats().Refused == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("child's message to strict.service not refused within 30 s: %+v\n%s", h.notifyStats(), h.logText())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if a, sub := h.state("strict.service"); a != string(StateActivating) {
				t.Errorf("strict.service is %s (%s) after its child's READY=1, want still activating", a, sub)
			}
			if res, why := h.stop("strict.service"); res != api.ResultDone {
				t.Errorf("stop strict.service: %s %s", res, why)
			}
		})
	}
}

// The fd store keeps at most file-descriptor-store-max fds and closes the
// rest; FDSTOREREMOVE=1 closes those of a name. Whether an fd is still
// open is seen from the other end of its pipe.
func TestFDStoreLimitAndRemove(t *testing.T) {
	h := newHarness(t, map[string]string{
		"store.service": "[service]\nexec-start = \"/bin/sleep 60\"\nfile-descriptor-store-max = 2\n",
	})
	if res, why := h.start("store.service"); res != api.ResultDone {
		t.Fatalf("start: %s %s", res, why)
	}
	var writers []*os.File
	msg := &notify.Message{FDStore: true, FDName: "pipes"}
	for i := 0; i < 3; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		writers = append(writers, w)
		msg.FDs = append(msg.FDs, r)
	}
	h.do(func() {
		s := h.m.Unit("store.service").behaviour.(*service)
		s.notifyMessage(msg)
		msg.Close() // what onNotifyEvent does with whatever was not taken
	})
	open := func(w *os.File) bool {
		_, err := w.Write([]byte("x"))
		return err == nil
	}
	if !open(writers[0]) || !open(writers[1]) || open(writers[2]) {
		t.Errorf("after storing 3 fds with a limit of 2: open %v %v %v, want true true false",
			open(writers[0]), open(writers[1]), open(writers[2]))
	}
	if n := h.prop("store.service", "NFileDescriptorStore"); n != "2" {
		t.Errorf("NFileDescriptorStore = %s", n)
	}
	h.do(func() {
		h.m.Unit("store.service").behaviour.(*service).notifyMessage(&notify.Message{FDStoreRemove: true, FDName: "pipes"})
	})
	if open(writers[0]) || open(writers[1]) {
		t.Error("FDSTOREREMOVE=1 left the fds open")
	}
	if !strings.Contains(h.logText(), "fd store is full") {
		t.Errorf("the refused fd was not logged:\n%s", h.logText())
	}
}

// MAINPID= hands the service to another of its processes: the shell that
// started it may exit, and the unit ends when the new main process does.
func TestNotifyMainPID(t *testing.T) {
	needSystemdNotify(t)
	h := newHarness(t, map[string]string{
		"handover.service": `[service]
type = "notify"
exec-start = ["/bin/sh", "-c", "sleep 60 & echo $$! > @DIR@/child; systemd-notify --ready MAINPID=$$!; sleep 0.2"]
`,
	})
	if res, why := h.start("handover.service"); res != api.ResultDone {
		t.Fatalf("start: %s %s\n%s", res, why, h.logText())
	}
	child := strings.TrimSpace(readFile(t, h.path("child")))
	if got := h.prop("handover.service", "MainPID"); got != child {
		t.Fatalf("MainPID = %s, want the child %s\n%s", got, child, h.logText())
	}
	time.Sleep(500 * time.Millisecond) // the shell that started it is gone
	if a, _ := h.state("handover.service"); a != "active" {
		t.Errorf("after the first process exited: %s, want active", a)
	}
	pid, _ := strconv.Atoi(child)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitState("handover.service", "inactive", 10*time.Second)
}
