// Command vigil is Vigil's init and service manager. As PID 1 it boots the
// machine; run with --manager (or as any other PID) it is the same manager
// as an ordinary process, with its own runtime directory and units.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	pid1 "vigil/init"
	"vigil/units/exec"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if exec.IsTrampoline(os.Args[0]) {
		exec.TrampolineMain()
		return
	}
	switch filepath.Base(os.Args[0]) {
	case "poweroff", "reboot", "halt":
		os.Exit(pid1.ShutdownCommand(filepath.Base(os.Args[0]), os.Args[1:]))
	}
	if os.Getpid() == 1 {
		pid1.Boot()
		return
	}
	os.Exit(runManager(os.Args[1:]))
}

func runManager(args []string) int {
	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	var unitDirs, wants listFlag
	fs.Var(&unitDirs, "units", "unit directory to search (repeatable, earlier wins; default the system's)")
	fs.Var(&wants, "wants", "unit to start at boot besides the default target (repeatable)")
	runtimeDir := fs.String("runtime-dir", "", "runtime directory: control socket and runtime state (default $XDG_RUNTIME_DIR/vigil or /run/vigil)")
	stateDir := fs.String("state-dir", "", "state directory: logs (default RUNTIME-DIR/state)")
	socket := fs.String("control-socket", "", "control socket path (default RUNTIME-DIR/control.sock)")
	target := fs.String("default-target", "default.target", "target to start")
	showStatus := fs.Bool("show-status", true, "print boot status lines on standard output")
	cgroupRoot := fs.String("cgroup-root", "", "delegated cgroup2 directory for the units (default: the manager's own cgroup when it is delegated, else none)")
	noCgroups := fs.Bool("no-cgroups", false, "run without cgroups")
	busPrivate := fs.String("bus-private", "", "peer-to-peer D-Bus socket of the org.freedesktop.systemd1 API (default RUNTIME-DIR/systemd-private)")
	fstabPath := fs.String("fstab", "", "file system table to turn into mount and swap units (as PID 1 does with /etc/fstab); default none")
	systemBus := fs.Bool("system-bus", false, "also own org.freedesktop.systemd1 on the system bus when a dbus-daemon runs")
	_ = fs.Bool("manager", true, "run as an ordinary manager process (implied when not PID 1)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vigil [--manager] [flags]\n\nRuns Vigil's service manager as an ordinary process (a child subreaper).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *runtimeDir == "" {
		*runtimeDir = "/run/vigil"
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && os.Getuid() != 0 {
			*runtimeDir = filepath.Join(x, "vigil")
		}
	}
	paths := []string(unitDirs)
	if len(paths) == 0 {
		paths = pid1.DefaultUnitPaths()
	}
	cfg := pid1.Config{
		UnitPaths:     paths,
		RuntimeDir:    *runtimeDir,
		StateDir:      *stateDir,
		ControlSocket: *socket,
		DefaultTarget: *target,
		Wants:         wants,
		CgroupRoot:    *cgroupRoot,
		NoCgroups:     *noCgroups,
		BusPrivate:    *busPrivate,
		SystemBus:     *systemBus,
		Fstab:         *fstabPath,
	}
	if *showStatus {
		cfg.Console = os.Stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	vm, err := pid1.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil: %v\n", err)
		return 1
	}
	action := vm.Run(ctx)
	if action != "" {
		fmt.Fprintf(os.Stderr, "vigil: manager stopped (%s)\n", action)
	}
	return 0
}
