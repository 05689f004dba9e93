package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"vigil/initramfs"
)

// ScriptUnit is the unit vigil-vm run adds to run the script after the
// default target and then power off through Vigil's ordered shutdown.
const ScriptUnit = "vigil-vm-script.service"

// ScriptPath is where the script goes in the guest.
const ScriptPath = "/etc/vigil/vm/script"

const scriptUnitText = `[unit]
description = "vigil-vm test script"
after = ["default.target"]
# The script must outlive an isolate to emergency.target (tests of a failing
# boot) and only stop for the final shutdown.
default-dependencies = false
ignore-on-isolate = true
conflicts = ["shutdown.target"]
before = ["shutdown.target"]

[service]
type = "oneshot"
exec-start = ["/bin/sh", "-c", "echo VIGIL-VM-SCRIPT-BEGIN; /bin/sh ` + ScriptPath + `; rc=$?; echo VIGIL-VM-SCRIPT-EXIT $rc; /sbin/initctl poweroff"]
standard-input = "null"
standard-output = "tty"
standard-error = "tty"
tty-path = "/dev/console"
`

// The console contract lines (see docs and the brief of issue 3). The
// script markers must end their line, so an echo of the unit's command
// line never counts as one.
var (
	reachedRE   = regexp.MustCompile(`vigil: reached default target (\S+) at uptime ([0-9.]+)s \(\+([0-9.]+)s after init exec\)`)
	shutdownRE  = regexp.MustCompile(`vigil: shutdown complete: (poweroff|reboot|halt) (clean|unclean)(?: \((.*)\))?`)
	emergencyRE = regexp.MustCompile(`vigil: entering emergency mode`)
	beginRE     = regexp.MustCompile(`(^|\s)VIGIL-VM-SCRIPT-BEGIN\s*$`)
	exitRE      = regexp.MustCompile(`(^|\s)VIGIL-VM-SCRIPT-EXIT (\d+)\s*$`)
)

// RunConfig describes one scripted guest run.
type RunConfig struct {
	// Image says what goes into the image besides the script. Empty
	// Vigil/Initctl are built from ./cmd/vigil and ./cmd/initctl of the
	// module at ModuleDir (default: found from the working directory);
	// an empty ModulesDir is the kernel's /lib/modules/<release>.
	Image       initramfs.Spec
	ModuleDir   string
	Compression initramfs.Compression
	// Script is the shell script run as root with /bin/sh in the guest.
	Script string
	// Boot configures QEMU; Initrd is ignored (RunScript builds it) and
	// vigil.wants=vigil-vm-script.service is added to Append.
	Boot Config
	// Timeout bounds the whole run, build included; default 120 s.
	Timeout time.Duration
	// Output receives the script's console lines as they come.
	Output io.Writer
	// AfterTarget, if set, runs when the default target is reached, while
	// the script runs (for QMP commands: hot-plug, send-key). Its error
	// fails the run.
	AfterTarget func(ctx context.Context, vm *VM) error
	// AllowEmergency accepts a boot that enters emergency mode instead of
	// reaching the default target (tests of a failing boot): the run goes
	// on, and the script still runs, since its unit survives the isolate
	// to emergency.target.
	AllowEmergency bool
	// ExternalShutdown says the script or AfterTarget shuts the guest
	// down itself (busybox poweroff, Ctrl-Alt-Del): the script need not
	// end, since that shutdown stops it. ExitStatus stays -1 unless it
	// ended first. If it does end, the unit still powers off as usual.
	ExternalShutdown bool
}

// RunResult is what a scripted run observed.
type RunResult struct {
	// ExitStatus is the script's exit status, -1 if it never ended.
	ExitStatus int
	// ScriptOutput are the lines between the BEGIN and EXIT markers.
	ScriptOutput []string
	// Console is the whole serial output, carriage returns removed.
	Console string
	// DefaultTarget, TargetUptime and SinceExec come from Vigil's
	// "reached default target" line (zero if it never came).
	DefaultTarget string
	TargetUptime  time.Duration
	SinceExec     time.Duration
	// ShutdownAction is poweroff, reboot or halt; Clean and
	// UncleanReason come from the "shutdown complete" line.
	ShutdownAction string
	Clean          bool
	UncleanReason  string
	// Emergency is set if Vigil entered emergency mode.
	Emergency bool
	// Elapsed is the host time from QEMU start to its exit.
	Elapsed time.Duration
	// ScriptEnded is the host time from QEMU start to the script's exit
	// line, after which its unit asks Vigil to power off (zero if the
	// script never ended). Elapsed - ScriptEnded is the poweroff's wall
	// time, as the host sees it.
	ScriptEnded time.Duration
	// Tail is the end of the console, for reports.
	Tail string
}

// Summary is the harness's last line:
// "vigil-vm: default target at uptime S.SSSs; shutdown clean".
func (r *RunResult) Summary() string {
	target := "default target never reached"
	if r.DefaultTarget != "" {
		target = fmt.Sprintf("default target at uptime %.3fs", r.TargetUptime.Seconds())
	}
	shutdown := "shutdown unclean"
	switch {
	case r.ShutdownAction == "":
		shutdown = "no shutdown line"
	case r.Clean:
		shutdown = "shutdown clean"
	case r.UncleanReason != "":
		shutdown = fmt.Sprintf("shutdown unclean (%s)", r.UncleanReason)
	}
	return fmt.Sprintf("vigil-vm: %s; %s", target, shutdown)
}

// RunError is a failed run: a one-line reason and the console tail.
type RunError struct {
	Reason string
	Tail   string
}

func (e *RunError) Error() string { return withTail(e.Reason, e.Tail) }

// consoleTailLines is how much console a failure report shows.
const consoleTailLines = 40

// RunScript builds an image holding cfg.Script and the script unit, boots
// it, streams the script's output, and checks the console contract: the
// default target is reached, the script ends, and the shutdown is clean,
// all before the timeout. The result is returned even with an error (if
// QEMU started), so callers can look at the console. A non-zero script
// exit status is not an error: it is in ExitStatus.
func RunScript(ctx context.Context, cfg RunConfig) (*RunResult, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 120 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	boot := cfg.Boot
	workDir := boot.WorkDir
	if workDir == "" {
		dir, err := os.MkdirTemp("", "vigil-vm-run-")
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		defer os.RemoveAll(dir)
		workDir, boot.WorkDir = dir, dir
	}
	// Check QEMU and the kernel before spending time on the image.
	check := Config{QEMU: boot.QEMU, Kernel: boot.Kernel, Initrd: os.DevNull}
	if err := fillDefaults(&check); err != nil {
		return nil, err
	}
	boot.Kernel = check.Kernel
	spec, err := scriptImageSpec(ctx, cfg, boot.Kernel)
	if err != nil {
		return nil, err
	}
	im, err := initramfs.Build(spec)
	if err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	boot.Initrd = filepath.Join(workDir, "initramfs.cpio")
	if err := im.WriteFile(boot.Initrd, cfg.Compression); err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}
	boot.Append = strings.TrimSpace("vigil.wants=" + ScriptUnit + " " + boot.Append)
	return runBooted(ctx, cfg, boot)
}

// PrepareSpec fills in what an image spec leaves empty: the vigil and
// initctl binaries (built from the module at moduleDir, or the one found
// from the working directory) and the modules directory of kernel.
func PrepareSpec(ctx context.Context, spec initramfs.Spec, moduleDir, kernel string) (initramfs.Spec, error) {
	if spec.Vigil == "" || spec.Initctl == "" {
		root := moduleDir
		if root == "" {
			var err error
			if root, err = initramfs.ModuleRoot("."); err != nil {
				return spec, err
			}
		}
		vigil, initctl, err := initramfs.BuildCommands(ctx, root, binaryCacheFor(root))
		if err != nil {
			return spec, err
		}
		if spec.Vigil == "" {
			spec.Vigil = vigil
		}
		if spec.Initctl == "" {
			spec.Initctl = initctl
		}
	}
	if spec.ModulesDir == "" {
		dir, err := ModulesDir(kernel)
		if err != nil {
			return spec, err
		}
		spec.ModulesDir = dir
	}
	return spec, nil
}

// binaryCacheFor is where the commands built from the module at root are
// kept: a directory of the shared cache per module root. One directory for
// every tree let two checkouts on one host (a worktree, a copy under test)
// rename their builds over each other between one's build and its image,
// so that a guest booted the other tree's Vigil.
func binaryCacheFor(root string) string {
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(initramfs.DefaultBinaryCache(), hex.EncodeToString(sum[:6]))
}

func scriptImageSpec(ctx context.Context, cfg RunConfig, kernel string) (initramfs.Spec, error) {
	spec, err := PrepareSpec(ctx, cfg.Image, cfg.ModuleDir, kernel)
	if err != nil {
		return spec, err
	}
	// The console shell would fight the script for the console.
	spec.ConsoleShell = false
	spec.Files = append(append([]initramfs.File(nil), spec.Files...),
		initramfs.File{Path: ScriptPath, Data: []byte(cfg.Script), Mode: 0o755},
		initramfs.File{Path: initramfs.UnitDir + "/" + ScriptUnit, Data: []byte(scriptUnitText), Mode: 0o644},
	)
	return spec, nil
}

// runBooted boots boot and follows the console contract until QEMU exits
// or ctx ends.
func runBooted(ctx context.Context, cfg RunConfig, boot Config) (*RunResult, error) {
	start := time.Now()
	vm, err := Boot(ctx, boot)
	if err != nil {
		return nil, err
	}
	defer vm.Cleanup()
	res := &RunResult{ExitStatus: -1}
	var (
		inScript, begun, ended bool
		hookErr                error
		hookWG                 sync.WaitGroup
		hookMu                 sync.Mutex
	)
	hookCtx, hookCancel := context.WithCancel(ctx)
	defer hookCancel()
	follow := func(line string) {
		if m := reachedRE.FindStringSubmatch(line); m != nil && res.DefaultTarget == "" {
			res.DefaultTarget = m[1]
			res.TargetUptime = seconds(m[2])
			res.SinceExec = seconds(m[3])
			if cfg.AfterTarget != nil {
				hookWG.Add(1)
				go func() {
					defer hookWG.Done()
					if err := cfg.AfterTarget(hookCtx, vm); err != nil {
						hookMu.Lock()
						hookErr = err
						hookMu.Unlock()
					}
				}()
			}
		}
		if emergencyRE.MatchString(line) {
			res.Emergency = true
		}
		if m := shutdownRE.FindStringSubmatch(line); m != nil {
			res.ShutdownAction, res.Clean, res.UncleanReason = m[1], m[2] == "clean", m[3]
		}
		switch {
		case !begun && beginRE.MatchString(line):
			begun, inScript = true, true
			return
		case inScript:
			if m := exitRE.FindStringSubmatch(line); m != nil {
				res.ExitStatus, _ = strconv.Atoi(m[2])
				res.ScriptEnded = time.Since(start)
				inScript, ended = false, true
				return
			}
			res.ScriptOutput = append(res.ScriptOutput, line)
			if cfg.Output != nil {
				fmt.Fprintln(cfg.Output, line)
			}
		}
	}
	from := 0
	timedOut := false
	for {
		lines, closed, changed := vm.console.snapshot(from)
		for _, l := range lines {
			follow(l)
		}
		from += len(lines)
		if closed {
			break
		}
		select {
		case <-changed:
			continue
		case <-ctx.Done():
			timedOut = true
		}
		vm.Kill()
		<-vm.Done()
		// Lines that came while QEMU was dying still count.
		lines, _, _ = vm.console.snapshot(from)
		for _, l := range lines {
			follow(l)
		}
		break
	}
	qemuErr := vm.Wait()
	hookCancel()
	hookWG.Wait()
	res.Elapsed = time.Since(start)
	res.Console = vm.Console()
	res.Tail = vm.ConsoleTail(consoleTailLines)
	fail := func(format string, args ...any) (*RunResult, error) {
		return res, &RunError{Reason: fmt.Sprintf(format, args...), Tail: res.Tail}
	}
	reachedTarget := res.DefaultTarget != "" || (cfg.AllowEmergency && res.Emergency)
	if timedOut {
		stage := "guest did not power off"
		switch {
		case !reachedTarget && res.Emergency:
			stage = "guest entered emergency mode"
		case !reachedTarget:
			stage = "default target never reached"
		case !begun:
			stage = "script never started"
		case !ended && !cfg.ExternalShutdown:
			stage = "script never ended"
		}
		return fail("timed out after %s: %s", cfg.Timeout, stage)
	}
	switch {
	case !reachedTarget && res.Emergency:
		return fail("guest entered emergency mode before the default target")
	case !reachedTarget:
		return fail("default target never reached (QEMU exited: %v)", exitText(qemuErr))
	case !begun:
		return fail("script never started (QEMU exited: %v)", exitText(qemuErr))
	case !ended && !cfg.ExternalShutdown:
		return fail("script never ended (QEMU exited: %v)", exitText(qemuErr))
	case res.ShutdownAction == "":
		return fail("no \"vigil: shutdown complete\" line before QEMU exited (%v)", exitText(qemuErr))
	case !res.Clean:
		return fail("shutdown %s unclean (%s)", res.ShutdownAction, res.UncleanReason)
	case qemuErr != nil:
		return fail("QEMU failed: %v %s", qemuErr, vm.Stderr())
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	if hookErr != nil {
		return fail("after-target hook: %v", hookErr)
	}
	return res, nil
}

func exitText(err error) string {
	var ee interface{ ExitCode() int }
	if err == nil {
		return "status 0"
	}
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return fmt.Sprintf("status %d", ee.ExitCode())
	}
	return err.Error()
}

func seconds(s string) time.Duration {
	v, _ := strconv.ParseFloat(s, 64)
	return time.Duration(v * float64(time.Second))
}
