package pid1

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/init/cmdline"
	"vigil/init/early"
	"vigil/init/kmod"
	"vigil/init/shutdown"
	"vigil/units"
	"vigil/units/api"
)

// Boot runs Vigil as PID 1: early boot, the manager, and at the end the
// final shutdown. On a machine it never returns: PID 1 must not exit.
// As PID 1 of a container (see early.DetectContainer) it exits with
// status 0 after an ordered stop, because there the end of PID 1 is how
// the container ends.
func Boot() {
	// Before /proc is mounted: the checks need only our own environment,
	// files and capabilities.
	container, inContainer := early.DetectContainer()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "vigil: PANIC in PID 1: %v\n%s\n", r, debug.Stack())
			if inContainer {
				// A container has no console to rescue it from: stop
				// what is left and let the container manager see the
				// failure.
				stopRemainingProcesses()
				os.Exit(1)
			}
			emergencyLoop(fmt.Sprint(r))
		}
	}()
	execUptime, _ := early.Uptime()
	mountAPI(inContainer)
	cmd, cmdText := bootCommandLine(inContainer)
	log := newConsoleLog(os.Stdout, cmd)
	log.debugf("kernel command line: %s", cmdText)
	if inContainer {
		log.debugf("running as PID 1 of a container (%s): skipping console, kernel modules, Ctrl-Alt-Del and cgroup setup; exiting at shutdown", container)
	}
	earlyBoot(cmd, inContainer, log)
	if !inContainer {
		// PID 1 leaves the root cgroup to its units' slices (no internal
		// processes beside enabled controllers).
		if err := EnterInitScope(); err != nil {
			console("cgroup: %v", err)
		}
	}
	action := runPID1(cmd, cmdText, execUptime, inContainer, log)
	if inContainer {
		os.Exit(containerFinalStage(action))
	}
	finalStage(action)
}

// console prints a vigil line on the console. These are the lines of the
// console contract (reached default target, shutdown complete, emergency
// mode) and problems of PID 1 itself: always shown, whatever the log level.
func console(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "vigil: "+format+"\n", args...)
}

// bootCommandLine is what PID 1 reads its options from: the kernel command
// line on a machine; in a container, as systemd does, its own arguments
// (the kernel's line belongs to the host).
func bootCommandLine(inContainer bool) (cmdline.Cmdline, string) {
	if inContainer {
		text := strings.Join(os.Args[1:], " ")
		return cmdline.Parse(text), text
	}
	data, err := os.ReadFile(cmdline.DefaultPath)
	if err != nil {
		console("reading the kernel command line: %v", err)
		return cmdline.Cmdline{}, ""
	}
	text := strings.TrimSpace(string(data))
	return cmdline.Parse(text), text
}

// mountAPI mounts the API file systems (skipping, in a container, what
// the container manager did or forbids) and, on a machine, takes the
// console as stdio: everything after reads /proc or prints.
func mountAPI(container bool) {
	for _, err := range early.MountAPI("/", early.MountOptions{Container: container}) {
		fmt.Fprintf(os.Stderr, "vigil: early mount: %v\n", err)
	}
	if !container {
		if err := early.SetupConsole(); err != nil {
			fmt.Fprintf(os.Stderr, "vigil: console: %v\n", err)
		}
	}
}

// earlyBoot does what must happen before any unit and after the API file
// systems: hostname, loopback, machine-id, kernel modules. In a container
// it skips what the container manager did or forbids.
func earlyBoot(cmd cmdline.Cmdline, container bool, log *consoleLog) {
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	syscall.Umask(0o022)
	if err := early.CreateRunSystemd("/"); err != nil {
		console("%v", err)
	}
	if name, err := early.SetHostname("/"); err != nil {
		console("hostname: %v", err)
	} else if name != "" {
		console("hostname set to %s", name)
	}
	if err := early.LoopbackUp(); err != nil {
		console("loopback: %v", err)
	}
	if id, err := early.MachineID("/"); err != nil {
		console("machine-id: %v", err)
	} else {
		log.debugf("machine-id %s", id)
	}
	if n, err := early.SeedRandom("/"); err != nil {
		console("random seed: %v", err)
	} else if n > 0 {
		log.debugf("seeded the random pool with %d bytes", n)
	}
	if !container {
		loadModules(cmd)
		// Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an instant reboot.
		unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	}
}

func loadModules(cmd cmdline.Cmdline) {
	names, err := kmod.ReadModulesLoadD(kmod.ModulesLoadDirs("/")...)
	if err != nil {
		console("modules-load.d: %v", err)
	}
	names = append(names, cmd.ModulesLoad()...)
	if len(names) == 0 {
		return
	}
	l := &kmod.Loader{}
	for _, err := range l.LoadAll(names) {
		console("kernel module: %v", err)
	}
}

// DebugShellUnit is the builtin unit that vigil.debug-shell starts.
const DebugShellUnit = "debug-shell.service"

// defaultDebugShellTTY is where systemd's debug-shell.service puts its
// shell, and so ours.
const defaultDebugShellTTY = "/dev/tty9"

// enableDebugShell writes what vigil.debug-shell asks for into unitDir,
// a runtime unit directory the manager reads at start, as
// systemd-debug-generator does: a link in sysinit.target.wants, so the
// shell is part of the boot transaction from its first moment (it has no
// default dependencies, so nothing holds it back), and, for a tty other
// than the builtin unit's, a drop-in that moves it there.
func enableDebugShell(unitDir, tty string) error {
	wants := filepath.Join(unitDir, "sysinit.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return fmt.Errorf("debug shell: %w", err)
	}
	// The loader goes by the link's name; the builtin file is found in
	// the builtin directory.
	if err := os.Symlink("../"+DebugShellUnit, filepath.Join(wants, DebugShellUnit)); err != nil && !os.IsExist(err) {
		return fmt.Errorf("debug shell: %w", err)
	}
	if tty == "" || tty == defaultDebugShellTTY {
		return nil
	}
	if !strings.HasPrefix(tty, "/") {
		tty = "/dev/" + tty
	}
	dir := filepath.Join(unitDir, DebugShellUnit+".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("debug shell drop-in: %w", err)
	}
	text := "# Written by vigil from vigil.debug-shell= on the kernel command line.\n" +
		"[unit]\ndescription = " + strconv.Quote("Early root shell on "+tty+" FOR DEBUGGING ONLY") + "\n" +
		"[service]\ntty-path = " + strconv.Quote(tty) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "tty.toml"), []byte(text), 0o644); err != nil {
		return fmt.Errorf("debug shell drop-in: %w", err)
	}
	return nil
}

func runPID1(cmd cmdline.Cmdline, cmdText string, execUptime time.Duration, container bool, log *consoleLog) string {
	target := "default.target"
	if t, ok := cmd.Target(); ok {
		target = t
	}
	if cmd.Emergency() {
		target = "emergency.target"
	} else if cmd.Rescue() {
		target = "rescue.target"
	}
	stateDir := "/var/log/vigil"
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		stateDir = "/run/vigil/state"
	}
	color := os.Getenv("TERM") != "dumb"
	// Status lines ("[  OK  ] Started ...") unless vigil.show-status=no.
	// "auto" (what "quiet" implies) and "error" still show them all: the
	// console is how tests and people follow a boot, and it costs little.
	var status io.Writer = os.Stdout
	if mode, _ := cmd.ShowStatus(); mode == "no" {
		status = nil
	}
	wants := cmd.Wants()
	if on, tty := cmd.DebugShell(); on {
		// Not through Config.Wants: those are wants of the default
		// target, which orders itself after them; the shell must be
		// there early, for a boot that hangs.
		if err := enableDebugShell("/run/vigil/units", tty); err != nil {
			console("%v", err)
		}
		if tty == "" {
			tty = defaultDebugShellTTY
		}
		console("debug shell: a root shell without login on %s (vigil.debug-shell); do not use on a machine others can reach", tty)
	}
	virtualization := ""
	if container {
		virtualization, _ = early.DetectContainer()
	}
	var vm *Manager
	cfg := Config{
		UnitPaths:  DefaultUnitPaths(),
		RuntimeDir: "/run/vigil",
		BusPrivate: "/run/systemd/private",
		SystemBus:  true,
		// A container's /dev and its devices belong to the container
		// manager (systemd runs no udev in a container either).
		Devices:           !container,
		Fstab:             "/etc/fstab",
		AuditConfig:       pid1AuditConfig,
		StateDir:          stateDir,
		DefaultTarget:     target,
		Wants:             wants,
		Console:           status,
		Color:             color,
		KernelCommandLine: cmdText,
		Virtualization:    virtualization,
		Logf:              log.managerLogf,
		Log:               log.managerLog,
		OnDefaultTarget: func(name, result string) {
			up, _ := early.Uptime()
			if result == api.ResultDone {
				console("reached default target %s at uptime %.3fs (+%.3fs after init exec)", name, up.Seconds(), (up - execUptime).Seconds())
				return
			}
			console("default target %s failed (%s)", name, result)
			console("entering emergency mode")
			if vm != nil {
				if _, err := vm.units.Enqueue("emergency.target", api.JobStart, api.ModeIsolate); err != nil {
					console("cannot start emergency.target: %v", err)
				}
			}
		},
	}
	log.debugf("starting the manager: default target %s, wants %v, unit paths %v, state in %s", target, wants, cfg.UnitPaths, stateDir)
	var err error
	vm, err = Start(context.Background(), cfg)
	if err != nil {
		console("cannot start the manager: %v", err)
		if container {
			return "exit"
		}
		emergencyLoop(err.Error())
	}
	// A panic out of the manager reaches Boot's emergencyLoop with the
	// fanotify group still open; its vfork of /bin/sh must not have an
	// exec the group could hold (units/exec's package doc). Closing the
	// group lets every held access go. Run closes it too: a second Close
	// does nothing.
	defer func() {
		if vm.files != nil {
			vm.files.Close()
		}
	}()
	sigs := make(chan os.Signal, 8)
	rtmin := syscall.Signal(34) // SIGRTMIN as glibc and systemd number it
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPWR, syscall.SIGUSR1, syscall.SIGUSR2,
		rtmin+3, rtmin+4, rtmin+5, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			action := signalAction(sig, rtmin, container)
			log.debugf("signal %v: %q", sig, action)
			if action == "" {
				continue
			}
			vm.loop.Do(func() {
				if action == "ctrl-alt-del" {
					console("Ctrl-Alt-Del: rebooting")
					action = "reboot"
				}
				if err := vm.requestShutdown(action); err != nil {
					console("%v", err)
				}
			})
		}
	}()
	return vm.Run(context.Background())
}

// signalAction maps signals to PID 1 as systemd and busybox's halt,
// poweroff and reboot send them. In a container SIGTERM and SIGINT mean
// an ordered poweroff: that is how `docker stop` and friends (and a
// terminal's Ctrl-C on `docker run -it`) ask a container to end.
func signalAction(sig os.Signal, rtmin syscall.Signal, container bool) string {
	if container && (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
		return "poweroff"
	}
	switch sig {
	case syscall.SIGINT:
		return "ctrl-alt-del"
	case syscall.SIGPWR:
		return "poweroff"
	case syscall.SIGUSR1, rtmin + 3:
		return "halt"
	case syscall.SIGUSR2, rtmin + 4:
		return "poweroff"
	case syscall.SIGTERM, rtmin + 5:
		// busybox's reboot sends SIGTERM to init.
		return "reboot"
	}
	return ""
}

// stopRemainingProcesses sends SIGTERM to every process left, waits up to
// 5 s, then sends SIGKILL. Units have stopped in order before; this is
// for what escaped them.
func stopRemainingProcesses() {
	left, _ := shutdown.KillAll(syscall.SIGTERM, nil)
	if len(left) > 0 {
		console("sent SIGTERM to %d remaining process(es)", len(left))
	}
	left = shutdown.WaitForProcesses(5*time.Second, nil, func(remaining []shutdown.Proc) {
		console("waiting for %d process(es) to exit", len(remaining))
	})
	if len(left) > 0 {
		console("sending SIGKILL to %d remaining process(es)", len(left))
		shutdown.KillAll(syscall.SIGKILL, nil)
		shutdown.WaitForProcesses(2*time.Second, nil, nil)
	}
}

// containerFinalStage ends a container's PID 1 after every unit stopped:
// it stops what is left and returns the exit status (0). It neither
// unmounts (the mounts belong to the container's namespace, which goes
// with it) nor calls reboot(2) (which in a PID namespace would only kill
// us with a signal the container manager reads as a crash or a reboot).
func containerFinalStage(action string) int {
	go reapForever()
	if action == "" || action == "exit" {
		action = "poweroff"
	}
	stopRemainingProcesses()
	console("container shutdown complete: %s; exiting with status 0", action)
	return 0
}

// finalStage runs after every unit stopped: kill what is left, unmount,
// and call reboot(2).
func finalStage(action string) {
	go reapForever()
	if action == "" || action == "exit" {
		action = "poweroff"
	}
	console("sending SIGTERM to remaining processes")
	stopRemainingProcesses()
	shutdown.Sync()
	clean, problems := shutdown.UnmountAll("/proc/self/mountinfo")
	for _, p := range problems {
		console("unmount: %v", p)
	}
	shutdown.Sync()
	if clean {
		console("shutdown complete: %s clean", action)
	} else {
		console("shutdown complete: %s unclean (%d file system(s) busy)", action, len(problems))
	}
	a := map[string]shutdown.Action{"poweroff": shutdown.PowerOff, "reboot": shutdown.Restart, "halt": shutdown.Halt}[action]
	if err := shutdown.Reboot(a); err != nil {
		console("reboot(2): %v", err)
	}
	emergencyLoop("reboot(2) returned")
}

func reapForever() {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err == unix.ECHILD {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// emergencyLoop is the last resort when PID 1 cannot go on: a shell on the
// console, forever, never an exit (which would panic the kernel). It forks
// the shell directly (a vfork): every caller has closed the fanotify group
// by then (Start on its failure, Run at its end, runPID1's deferred Close on
// a panic), so nothing can hold the shell's exec.
func emergencyLoop(reason string) {
	console("entering emergency mode")
	console("reason: %s", reason)
	go reapForever()
	for {
		pid, err := syscall.ForkExec("/bin/sh", []string{"/bin/sh", "-l"}, &syscall.ProcAttr{
			Env:   []string{"PATH=/sbin:/bin:/usr/sbin:/usr/bin", "HOME=/root", "TERM=vt100"},
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
		})
		if err != nil {
			console("cannot start a shell: %v", err)
			time.Sleep(5 * time.Second)
			continue
		}
		for {
			if err := syscall.Kill(pid, 0); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// logLevel is a syslog priority, the scale of vigil.log-level=.
type logLevel int

const (
	levelEmerg logLevel = iota
	levelAlert
	levelCrit
	levelErr
	levelWarning
	levelNotice
	levelInfo
	levelDebug
)

func (l logLevel) String() string {
	if l < levelEmerg || l > levelDebug {
		return strconv.Itoa(int(l))
	}
	return [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}[l]
}

// parseLogLevel reads a vigil.log-level= value: a syslog level name as
// systemd takes them (emerg, alert, crit, err, warning, notice, info,
// debug; also error, warn, critical, emergency) or its number 0-7.
func parseLogLevel(s string) (logLevel, error) {
	word := strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(word); err == nil {
		if n < int(levelEmerg) || n > int(levelDebug) {
			return 0, fmt.Errorf("log level %q: a number must be 0-7", s)
		}
		return logLevel(n), nil
	}
	switch word {
	case "emergency":
		return levelEmerg, nil
	case "critical":
		return levelCrit, nil
	case "error":
		return levelErr, nil
	case "warn":
		return levelWarning, nil
	}
	for l := levelEmerg; l <= levelDebug; l++ {
		if l.String() == word {
			return l, nil
		}
	}
	return 0, fmt.Errorf("log level %q: want emerg, alert, crit, err, warning, notice, info, debug or 0-7", s)
}

// consoleLog is PID 1's filter for its own log lines on the console.
type consoleLog struct {
	w   io.Writer
	max logLevel
}

// newConsoleLog takes the level from vigil.log-level= (systemd.log_level=).
// Without one it is info, as systemd's; but "quiet" makes it warning:
// systemd's lines reach the console through the kernel log, whose console
// level "quiet" sets to warnings, and ours should not say more.
func newConsoleLog(w io.Writer, cmd cmdline.Cmdline) *consoleLog {
	c := &consoleLog{w: w, max: levelInfo}
	if cmd.Quiet() {
		c.max = levelWarning
	}
	if v, ok := cmd.LogLevel(); ok {
		l, err := parseLogLevel(v)
		if err != nil {
			fmt.Fprintf(w, "vigil: %v; keeping %s\n", err, c.max)
		} else {
			c.max = l
		}
	}
	return c
}

// debugf prints a debug-level line of PID 1's own, marked "debug:".
func (c *consoleLog) debugf(format string, args ...any) {
	if c.max >= levelDebug {
		fmt.Fprintf(c.w, "vigil: debug: "+format+"\n", args...)
	}
}

// managerLog is the manager's levelled log (units.Options.Log): the line
// is shown when the level its code gave it is within the console's.
func (c *consoleLog) managerLog(level units.Level, line string) {
	if logLevel(level) <= c.max {
		fmt.Fprintf(c.w, "vigil: %s\n", line)
	}
}

// managerLogf takes the lines of the sources that log without a level (the
// observer's loop and sources, the control and observer sockets, D-Bus,
// audit): the line is shown when its guessed level (guessLineLevel) is
// within the console's.
func (c *consoleLog) managerLogf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if guessLineLevel(line) <= c.max {
		fmt.Fprintf(c.w, "vigil: %s\n", line)
	}
}

// guessLineLevel gives a line from a source without levels its syslog
// level from its words. Those sources log mostly trouble: panics are crit,
// failures err, things refused, dropped or late warning; their few routine
// lines ("dbus: serving") are debug; the rest is info. The units manager's
// lines never come here: their code gives their level (units.Level).
func guessLineLevel(line string) logLevel {
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(line, w) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.HasPrefix(line, "debug: "), has("dbus: serving"):
		return levelDebug
	case has("PANIC", "panic"):
		return levelCrit
	case has("Failed", "failed", "cannot", "Cannot", "Could not", "could not"):
		return levelErr
	case has("Warning", "warning", "did not answer", "timed out", "ignored", "Ignoring", "refusing", "dropped", "missing"):
		return levelWarning
	}
	return levelInfo
}
