// Package emergency owns the emergency shell: a root shell on the console
// that PID 1 falls back to when the boot fails, with a banner that says so.
//
// The shell runs as the leader of its own session with the console as its
// controlling terminal, so it is the terminal's foreground process group
// and job control and Ctrl-C work. This package never waits for the shell
// itself: PID 1's reaper owns every child's exit status, so the caller
// passes a SpawnAndWait that starts the process and waits through the
// reaper.
package emergency

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Banner is the first line printed on the console. Tools and tests grep
// for it: do not change its text.
const Banner = "vigil: entering emergency mode"

// ShellEnv names the environment variable that overrides the shell.
const ShellEnv = "VIGIL_EMERGENCY_SHELL"

// DefaultShell is run when ShellEnv is unset or empty.
const DefaultShell = "/bin/sh"

// DefaultConsole is used when no console is given.
const DefaultConsole = "/dev/console"

// SpawnAndWait starts path with argv and attr (as syscall.ForkExec does)
// and returns once the process has exited, with its wait status. PID 1
// implements it with its reaper; tests may use ForkExec and Wait4.
type SpawnAndWait func(path string, argv []string, attr *syscall.ProcAttr) (syscall.WaitStatus, error)

// Shell prints Banner and reason on console (DefaultConsole when empty)
// and runs the shell there until it exits. It returns nil when the shell
// ran and exited, whatever its status; an error when it could not be run.
func Shell(console, reason string, spawn SpawnAndWait) error {
	if spawn == nil {
		return errors.New("emergency shell: no spawn function")
	}
	if console == "" {
		console = DefaultConsole
	}
	shell := ShellPath()
	if st, err := os.Stat(shell); err != nil {
		return fmt.Errorf("emergency shell: %w", err)
	} else if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("emergency shell: %s is not executable", shell)
	}
	tty, err := os.OpenFile(console, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("emergency shell: open console %s: %w", console, err)
	}
	defer tty.Close()
	// The banner goes out even if writing fails part-way: the shell matters more.
	_, _ = tty.WriteString(BannerText(reason, shell))

	fd := tty.Fd()
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   shellEnv(os.Environ()),
		Files: []uintptr{fd, fd, fd},
		Sys: &syscall.SysProcAttr{
			Setsid:  true,
			Setctty: true,
			Ctty:    0, // the child's fd 0, the console
		},
	}
	if _, err := spawn(shell, []string{shell}, attr); err != nil {
		return fmt.Errorf("emergency shell %s on %s: %w", shell, console, err)
	}
	return nil
}

// ShellPath returns the shell to run: $VIGIL_EMERGENCY_SHELL or DefaultShell.
func ShellPath() string {
	if s := os.Getenv(ShellEnv); s != "" {
		return s
	}
	return DefaultShell
}

// BannerText is what Shell prints before starting the shell.
func BannerText(reason, shell string) string {
	var b strings.Builder
	b.WriteString("\n" + Banner + "\n")
	if reason = strings.TrimSpace(reason); reason != "" {
		for _, line := range strings.Split(reason, "\n") {
			b.WriteString("vigil: " + strings.TrimRight(line, "\r") + "\n")
		}
	}
	b.WriteString("vigil: starting " + shell + " on the console; leave it with \"exit\".\n")
	return b.String()
}

// shellEnv completes the environment a root shell on a console needs.
func shellEnv(env []string) []string {
	defaults := map[string]string{
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME": "/root",
		"TERM": "linux",
		"USER": "root",
	}
	out := make([]string, 0, len(env)+len(defaults))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := defaults[k]; ok {
			if k == "HOME" || k == "USER" {
				continue // always root's
			}
			delete(defaults, k)
		}
		out = append(out, kv)
	}
	for _, k := range []string{"PATH", "HOME", "TERM", "USER"} {
		if v, ok := defaults[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}
