package dbus

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A socket's ExecStartPre/ExecStartPost/ExecStopPre/ExecStopPost are the
// Socket interface's a(sasbttttuii) lists with their last runs, as systemd
// exports them: the real systemctl prints them and godbus reads them typed.
func TestSocketExecCommandsExported(t *testing.T) {
	sockDir := t.TempDir()
	h := newProcHarness(t, map[string]string{
		"cmd.socket": "[socket]\nlisten-stream = [\"" + filepath.Join(sockDir, "cmd.sock") + "\"]\n" +
			"exec-start-pre = \"/bin/true pre-arg\"\nexec-start-post = \"-/bin/sh -c 'exit 3'\"\n" +
			"exec-stop-post = \"/bin/true stopped\"\n",
	})
	out, code := h.systemctl("show", "-p", "ExecStartPre", "cmd.socket")
	expectCode(t, "show -p ExecStartPre before start", out, code, 0)
	// Configured but never run: the command is listed without a PID.
	if !regexp.MustCompile(`ExecStartPre=\{ path=/bin/true ; argv\[\]=/bin/true pre-arg ; ignore_errors=no ;`).MatchString(out) {
		t.Errorf("ExecStartPre before start:\n%s", out)
	}
	out, code = h.systemctl("start", "cmd.socket")
	expectCode(t, "start cmd.socket", out, code, 0)
	out, code = h.systemctl("show", "-p", "ExecStartPre,ExecStartPost,ExecStopPre,ExecStopPost", "cmd.socket")
	expectCode(t, "show -p Exec*", out, code, 0)
	for _, re := range []string{
		`ExecStartPre=\{ path=/bin/true ; argv\[\]=/bin/true pre-arg ; ignore_errors=no ; start_time=\[.+\] ; stop_time=\[.+\] ; pid=[1-9]\d* ; code=exited ; status=0 \}`,
		`ExecStartPost=\{ path=/bin/sh ; argv\[\]=/bin/sh -c exit 3 ; ignore_errors=yes ; .* pid=[1-9]\d* ; code=exited ; status=3 \}`,
		`ExecStopPost=\{ path=/bin/true ; argv\[\]=/bin/true stopped ; ignore_errors=no ;`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show lacks %s:\n%s", re, out)
		}
	}
	// Stop commands have not run yet: no PID.
	if !regexp.MustCompile(`ExecStopPost=\{ path=/bin/true ; argv\[\]=/bin/true stopped ; ignore_errors=no ; start_time=\[n/a\] ; stop_time=\[n/a\] ; pid=0 ;`).MatchString(out) {
		t.Errorf("ExecStopPost shows a run before the socket stopped:\n%s", out)
	}

	conn := godbusClient(t, h.sock)
	var runs []execT
	v, err := conn.Object(busName, UnitPath("cmd.socket")).GetProperty(ifaceSocket + ".ExecStartPre")
	if err != nil {
		t.Fatal(err)
	}
	if sig := v.Signature().String(); sig != "a(sasbttttuii)" {
		t.Fatalf("ExecStartPre signature %s, want a(sasbttttuii)", sig)
	}
	if err := v.Store(&runs); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Path != "/bin/true" || strings.Join(runs[0].Argv, " ") != "/bin/true pre-arg" ||
		runs[0].PID == 0 || runs[0].Code != 1 || runs[0].Status != 0 || runs[0].StartRT == 0 || runs[0].ExitRT < runs[0].StartRT {
		t.Errorf("ExecStartPre over godbus: %+v", runs)
	}

	out, code = h.systemctl("stop", "cmd.socket")
	expectCode(t, "stop cmd.socket", out, code, 0)
	out, _ = h.systemctl("show", "-p", "ExecStopPost", "cmd.socket")
	if !regexp.MustCompile(`ExecStopPost=\{ path=/bin/true ; argv\[\]=/bin/true stopped ; .* pid=[1-9]\d* ; code=exited ; status=0 \}`).MatchString(out) {
		t.Errorf("ExecStopPost after stop:\n%s", out)
	}
}
