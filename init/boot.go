package pid1

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"vigil/init/cmdline"
	"vigil/init/early"
	"vigil/init/kmod"
	"vigil/init/shutdown"
	"vigil/units/api"
)

// Boot runs Vigil as PID 1: early boot, the manager, and at the end the
// final shutdown. It never returns; PID 1 must not exit.
func Boot() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "vigil: PANIC in PID 1: %v\n%s\n", r, debug.Stack())
			emergencyLoop(fmt.Sprint(r))
		}
	}()
	execUptime, _ := early.Uptime()
	cmd := earlyBoot()
	if !inContainer() {
		// PID 1 leaves the root cgroup to its units' slices (no internal
		// processes beside enabled controllers).
		if err := EnterInitScope(); err != nil {
			console("cgroup: %v", err)
		}
	}
	action := runPID1(cmd, execUptime)
	finalStage(action)
}

// console prints a vigil line on the console.
func console(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "vigil: "+format+"\n", args...)
}

func inContainer() bool {
	if os.Getenv("container") != "" {
		return true
	}
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// earlyBoot does what must happen before any unit: API file systems, the
// console, hostname, loopback, machine-id, kernel modules.
func earlyBoot() cmdline.Cmdline {
	container := inContainer()
	for _, err := range early.MountAPI("/", early.MountOptions{Container: container}) {
		fmt.Fprintf(os.Stderr, "vigil: early mount: %v\n", err)
	}
	if !container {
		if err := early.SetupConsole(); err != nil {
			fmt.Fprintf(os.Stderr, "vigil: console: %v\n", err)
		}
	}
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	syscall.Umask(0o022)
	cmd, err := cmdline.Read("/proc/cmdline")
	if err != nil {
		console("reading the kernel command line: %v", err)
	}
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
	if _, err := early.MachineID("/"); err != nil {
		console("machine-id: %v", err)
	}
	if _, err := early.SeedRandom("/"); err != nil {
		console("random seed: %v", err)
	}
	if !container {
		loadModules(cmd)
		// Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an instant reboot.
		unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	}
	return cmd
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

func runPID1(cmd cmdline.Cmdline, execUptime time.Duration) string {
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
	var vm *Manager
	cfg := Config{
		UnitPaths:         DefaultUnitPaths(),
		RuntimeDir:        "/run/vigil",
		BusPrivate:        "/run/systemd/private",
		SystemBus:         true,
		StateDir:          stateDir,
		DefaultTarget:     target,
		Wants:             cmd.Wants(),
		Console:           status,
		Color:             color,
		KernelCommandLine: readCmdline(),
		Logf: func(format string, args ...any) {
			if strings.Contains(format, "did not answer") || strings.HasPrefix(format, "observer:") {
				fmt.Fprintf(os.Stdout, "vigil: "+format+"\n", args...)
			}
		},
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
	var err error
	vm, err = Start(context.Background(), cfg)
	if err != nil {
		console("cannot start the manager: %v", err)
		emergencyLoop(err.Error())
	}
	sigs := make(chan os.Signal, 8)
	rtmin := syscall.Signal(34) // SIGRTMIN as glibc and systemd number it
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPWR, syscall.SIGUSR1, syscall.SIGUSR2,
		rtmin+3, rtmin+4, rtmin+5, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			action := signalAction(sig, rtmin)
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
// poweroff and reboot send them.
func signalAction(sig os.Signal, rtmin syscall.Signal) string {
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

func readCmdline() string {
	data, _ := os.ReadFile("/proc/cmdline")
	return strings.TrimSpace(string(data))
}

// finalStage runs after every unit stopped: kill what is left, unmount,
// and call reboot(2).
func finalStage(action string) {
	go reapForever()
	if action == "" || action == "exit" {
		action = "poweroff"
	}
	console("sending SIGTERM to remaining processes")
	shutdown.KillAll(syscall.SIGTERM, nil)
	left := shutdown.WaitForProcesses(5*time.Second, nil, func(remaining []shutdown.Proc) {
		console("waiting for %d process(es) to exit", len(remaining))
	})
	if len(left) > 0 {
		console("sending SIGKILL to %d remaining process(es)", len(left))
		shutdown.KillAll(syscall.SIGKILL, nil)
		shutdown.WaitForProcesses(2*time.Second, nil, nil)
	}
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
// console, forever, never an exit (which would panic the kernel).
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
