// Command vigil-vm builds a Vigil initramfs and boots it under QEMU (TCG):
//
//	vigil-vm build [-o FILE] [build flags]
//	vigil-vm boot  [build flags] [--qmp PATH] [--disk FILE]... [--append ARGS] [--smp N]
//	vigil-vm run   --script FILE [build flags] [--disk FILE]... [--hotplug-disk ID=FILE]
//	               [--qmp PATH] [--append ARGS] [--smp N] [--timeout 120s] [--log FILE]
//	vigil-vm bench [build flags] [--rounds 5] [--smp 1,2] [--extra-units 0,50] [--timeout 3m]
//
// Build flags: --vigil PATH --initctl PATH (default: built from ./cmd/vigil
// and ./cmd/initctl of the module around the working directory),
// --kernel FILE (default: newest /boot/vmlinuz-*), --add HOST[:GUEST]...,
// --units DIR..., --compress none|gzip.
//
// "boot" is interactive: the serial console is the terminal, with a root
// shell on it; Ctrl-A X quits QEMU, "poweroff" in the guest ends it
// cleanly. "run" exits with the script's exit status, or 125 if the
// harness failed (no default target, script or shutdown never finished,
// unclean shutdown, timeout), after printing the reason and the console
// tail on stderr. Its last line on stdout is the summary
// "vigil-vm: default target at uptime S.SSSs; shutdown clean".
//
// "bench" boots every combination of --extra-units and --smp once per
// round, interleaved in a random order, and prints a Markdown table of
// medians: guest uptime at the default target, the time from /init's exec
// to it, PID 1's resident memory then, and the host time from the
// poweroff request to QEMU's exit.
//
// It owns only the command line; packages initramfs and qemu do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vigil/initramfs"
	"vigil/qemu"
)

// exitHarnessFailure is vigil-vm run's status when the run itself failed,
// as opposed to the script's own status.
const exitHarnessFailure = 125

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: vigil-vm build|boot|run|bench [flags] (vigil-vm CMD -h for flags)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var err error
	status := 0
	switch args[0] {
	case "build":
		err = cmdBuild(ctx, args[1:], stderr)
	case "boot":
		status, err = cmdBoot(ctx, args[1:], stderr)
	case "run":
		status, err = cmdRun(ctx, args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "usage: vigil-vm build|boot|run|bench [flags] (vigil-vm CMD -h for flags)")
		return 0
	default:
		fmt.Fprintf(stderr, "vigil-vm: unknown command %q (want build, boot, run or bench)\n", args[0])
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usage usageError
	if errors.As(err, &usage) {
		fmt.Fprintln(stderr, "vigil-vm:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "vigil-vm:", err)
		if status == 0 {
			status = 1
		}
	}
	return status
}

type usageError struct{ error }

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// buildFlags are the flags every command shares.
type buildFlags struct {
	vigil, initctl, kernel, compress string
	adds, units                      listFlag
}

func (b *buildFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.vigil, "vigil", "", "vigil binary (default: go build ./cmd/vigil)")
	fs.StringVar(&b.initctl, "initctl", "", "initctl binary (default: go build ./cmd/initctl)")
	fs.StringVar(&b.kernel, "kernel", "", "kernel image (default: newest /boot/vmlinuz-*)")
	fs.StringVar(&b.compress, "compress", "none", "archive compression: none or gzip")
	fs.Var(&b.adds, "add", "HOST[:GUEST] file to copy, with its shared libraries (repeatable)")
	fs.Var(&b.units, "units", "directory of unit files for /etc/vigil/units (repeatable)")
}

// spec turns the flags into an image spec, without the binaries and
// modules that qemu.PrepareSpec fills in.
func (b *buildFlags) spec() (initramfs.Spec, initramfs.Compression, error) {
	var spec initramfs.Spec
	c, err := initramfs.ParseCompression(b.compress)
	if err != nil {
		return spec, c, usageError{err}
	}
	spec.Vigil, spec.Initctl = b.vigil, b.initctl
	for _, a := range b.adds {
		add, err := initramfs.ParseAddition(a)
		if err != nil {
			return spec, c, usageError{err}
		}
		spec.Adds = append(spec.Adds, add)
	}
	spec.UnitDirs = b.units
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		spec.ModTime, err = strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return spec, c, usageError{fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", epoch, err)}
		}
	}
	return spec, c, nil
}

// kernelPath resolves --kernel or the newest installed kernel.
func (b *buildFlags) kernelPath() (string, error) {
	if b.kernel != "" {
		if _, err := os.Stat(b.kernel); err != nil {
			return "", fmt.Errorf("kernel: %w", err)
		}
		return b.kernel, nil
	}
	return qemu.FindKernel("/boot")
}

// buildImage builds the image to out and reports notes on stderr.
func (b *buildFlags) buildImage(ctx context.Context, out string, consoleShell bool, stderr io.Writer) (kernel string, err error) {
	spec, c, err := b.spec()
	if err != nil {
		return "", err
	}
	if kernel, err = b.kernelPath(); err != nil {
		return "", err
	}
	if spec, err = qemu.PrepareSpec(ctx, spec, "", kernel); err != nil {
		return "", err
	}
	spec.ConsoleShell = consoleShell
	im, err := initramfs.Build(spec)
	if err != nil {
		return "", err
	}
	for _, n := range im.Notes() {
		fmt.Fprintln(stderr, "vigil-vm: note:", n)
	}
	return kernel, im.WriteFile(out, c)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil-vm "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %q", fs.Args())}
	}
	return nil
}

func cmdBuild(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("build", stderr)
	var b buildFlags
	b.register(fs)
	out := fs.String("o", "", "output file (default vigil-initramfs.cpio, .cpio.gz with --compress gzip)")
	consoleShell := fs.Bool("console-shell", true, "enable the root shell on the console")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		*out = "vigil-initramfs.cpio"
		if b.compress == string(initramfs.CompressGzip) {
			*out += ".gz"
		}
	}
	start := time.Now()
	if _, err := b.buildImage(ctx, *out, *consoleShell, stderr); err != nil {
		return err
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "vigil-vm: wrote %s (%.1f MB) in %.2fs\n", *out, float64(st.Size())/1e6, time.Since(start).Seconds())
	return nil
}

// vmFlags are the flags of the commands that boot.
type vmFlags struct {
	qmp, append string
	smp         int
	verbose     bool
	disks       listFlag
}

func (v *vmFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&v.qmp, "qmp", "", "QMP socket path (default: in a temporary directory)")
	fs.StringVar(&v.append, "append", "", "extra kernel command line arguments")
	fs.IntVar(&v.smp, "smp", 1, "number of virtual CPUs")
	fs.BoolVar(&v.verbose, "verbose", false, "drop \"quiet\" from the kernel command line")
	fs.Var(&v.disks, "disk", "raw disk image attached as a virtio drive (repeatable)")
}

func (v *vmFlags) config(kernel string) qemu.Config {
	return qemu.Config{Kernel: kernel, SMP: v.smp, Append: v.append, Verbose: v.verbose, Disks: v.disks, QMPSocket: v.qmp}
}

func cmdBoot(ctx context.Context, args []string, stderr io.Writer) (int, error) {
	fs := newFlagSet("boot", stderr)
	var b buildFlags
	var v vmFlags
	b.register(fs)
	v.register(fs)
	if err := parse(fs, args); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "vigil-vm-boot-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initramfs.cpio")
	kernel, err := b.buildImage(ctx, initrd, true, stderr)
	if err != nil {
		return 0, err
	}
	cfg := v.config(kernel)
	cfg.Initrd, cfg.WorkDir, cfg.Interactive, cfg.Console = initrd, dir, true, os.Stdout
	fmt.Fprintf(stderr, "vigil-vm: booting %s (Ctrl-A X quits QEMU; poweroff in the guest ends it)\n", kernel)
	// The terminal's Ctrl-C goes to the guest (QEMU puts the terminal in
	// raw mode); before that, it must not kill us and leave QEMU behind.
	signal.Ignore(syscall.SIGINT)
	vm, err := qemu.Boot(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer vm.Cleanup()
	if err := vm.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), fmt.Errorf("QEMU exited: %v %s", err, vm.Stderr())
		}
		return 1, err
	}
	return 0, nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("run", stderr)
	var b buildFlags
	var v vmFlags
	b.register(fs)
	v.register(fs)
	script := fs.String("script", "", "shell script to run in the guest (required)")
	timeout := fs.Duration("timeout", 120*time.Second, "limit for the whole run; QEMU is killed after it")
	logPath := fs.String("log", "", "also write the raw console log to this file")
	var hotplug listFlag
	fs.Var(&hotplug, "hotplug-disk", "ID=FILE drive for later device_add over QMP (repeatable)")
	if err := parse(fs, args); err != nil {
		return 0, err
	}
	if *script == "" {
		return 0, usageError{errors.New("run needs --script FILE")}
	}
	text, err := os.ReadFile(*script)
	if err != nil {
		return 0, fmt.Errorf("script: %w", err)
	}
	spec, c, err := b.spec()
	if err != nil {
		return 0, err
	}
	cfg := qemu.RunConfig{Image: spec, Compression: c, Script: string(text), Timeout: *timeout, Output: stdout}
	cfg.Boot = v.config(b.kernel)
	cfg.Boot.ConsoleLog = *logPath
	for _, h := range hotplug {
		d, err := qemu.ParseHotplugDisk(h)
		if err != nil {
			return 0, usageError{err}
		}
		cfg.Boot.HotplugDisks = append(cfg.Boot.HotplugDisks, d)
	}
	res, err := qemu.RunScript(ctx, cfg)
	if err != nil {
		var re *qemu.RunError
		if errors.As(err, &re) {
			fmt.Fprintf(stderr, "vigil-vm: FAIL: %s\nlast console lines:\n%s\n", re.Reason, re.Tail)
			fmt.Fprintln(stdout, res.Summary())
			return exitHarnessFailure, nil
		}
		return exitHarnessFailure, err
	}
	fmt.Fprintln(stdout, res.Summary())
	return res.ExitStatus, nil
}
