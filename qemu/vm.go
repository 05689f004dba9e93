// Package qemu boots a Vigil initramfs under qemu-system-x86_64 with TCG
// (KVM hangs on the project's machines), captures the serial console to a
// log and a live line stream, talks QMP (send-key, device_add/del, quit,
// any command), and runs test scripts in the guest through Vigil's console
// contract (RunScript).
//
// It owns the QEMU command line and the host side of that contract. The
// image itself comes from package initramfs.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HotplugDisk is a drive defined at start but attached to no device, for a
// later DeviceAdd("virtio-blk-pci", ..., {"drive": ID}).
type HotplugDisk struct {
	ID   string
	File string
}

// ParseHotplugDisk parses ID=FILE.
func ParseHotplugDisk(s string) (HotplugDisk, error) {
	id, file, ok := strings.Cut(s, "=")
	if !ok || id == "" || file == "" {
		return HotplugDisk{}, fmt.Errorf("--hotplug-disk %q: want ID=FILE", s)
	}
	return HotplugDisk{ID: id, File: file}, nil
}

// Config describes one QEMU run.
type Config struct {
	// QEMU is the emulator binary; default qemu-system-x86_64 from PATH.
	QEMU string
	// Kernel defaults to the newest /boot/vmlinuz-*.
	Kernel string
	// Initrd is the initramfs archive (required).
	Initrd string
	// MemoryMB defaults to 1024, SMP to 1.
	MemoryMB int
	SMP      int
	// Append is added to the kernel command line after
	// "console=ttyS0 rdinit=/init panic=-1 no_timer_check quiet".
	Append string
	// Verbose drops "quiet" from the kernel command line.
	Verbose bool
	// Disks are raw images attached as virtio drives (vda, vdb, ...).
	Disks []string
	// HotplugDisks are drives to attach later over QMP.
	HotplugDisks []HotplugDisk
	// QMPSocket is the QMP socket path; default a fresh one in WorkDir.
	QMPSocket string
	// ConsoleLog receives the raw serial output; default WorkDir/console.log.
	ConsoleLog string
	// Console, if set, also receives the raw serial output as it comes.
	Console io.Writer
	// Interactive connects the terminal (os.Stdin) to the serial console
	// and keeps QEMU in the foreground process group; Ctrl-A X quits.
	Interactive bool
	// WorkDir holds the socket and log; default a new temporary directory,
	// removed by VM.Cleanup.
	WorkDir string
}

// VM is a running QEMU.
type VM struct {
	cmd      *exec.Cmd
	qmp      *QMP
	console  *console
	log      *os.File
	logPath  string
	stderr   *lockedBuffer
	workDir  string
	ownsWork bool
	args     []string

	done    chan struct{}
	waitErr error
	copied  sync.WaitGroup
}

// lockedBuffer collects QEMU's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// KernelCommandLine is the command line Boot passes for cfg.
func KernelCommandLine(cfg Config) string {
	// no_timer_check: under TCG on a loaded host the kernel's check of the
	// IO-APIC timer can fail and panic the boot ("IO-APIC + timer doesn't
	// work!"); the guest's timer works, only slowly emulated.
	cmdline := "console=ttyS0 rdinit=/init panic=-1 no_timer_check"
	if !cfg.Verbose {
		cmdline += " quiet"
	}
	if cfg.Append != "" {
		cmdline += " " + cfg.Append
	}
	return cmdline
}

// Args returns the QEMU arguments for cfg (after defaults are filled in).
func Args(cfg Config) []string {
	args := []string{
		"-accel", "tcg", "-m", strconv.Itoa(cfg.MemoryMB), "-smp", strconv.Itoa(cfg.SMP),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", cfg.Kernel, "-initrd", cfg.Initrd,
		"-append", KernelCommandLine(cfg),
		"-qmp", "unix:" + cfg.QMPSocket + ",server=on,wait=off",
	}
	for _, d := range cfg.Disks {
		args = append(args, "-drive", "if=virtio,format=raw,file="+d)
	}
	for _, d := range cfg.HotplugDisks {
		args = append(args, "-drive", "if=none,format=raw,id="+d.ID+",file="+d.File)
	}
	return args
}

// Boot checks the configuration, starts QEMU and connects QMP. ctx bounds
// the whole life of the VM: when it ends QEMU is killed.
func Boot(ctx context.Context, cfg Config) (*VM, error) {
	if err := fillDefaults(&cfg); err != nil {
		return nil, err
	}
	vm := &VM{console: newConsole(), stderr: &lockedBuffer{}, workDir: cfg.WorkDir, done: make(chan struct{}), logPath: cfg.ConsoleLog}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "vigil-vm-")
		if err != nil {
			return nil, fmt.Errorf("boot: %w", err)
		}
		vm.workDir, vm.ownsWork = dir, true
	}
	if cfg.QMPSocket == "" {
		cfg.QMPSocket = filepath.Join(vm.workDir, "qmp.sock")
	}
	if cfg.ConsoleLog == "" {
		cfg.ConsoleLog = filepath.Join(vm.workDir, "console.log")
	}
	vm.logPath = cfg.ConsoleLog
	_ = os.Remove(cfg.QMPSocket)
	log, err := os.Create(cfg.ConsoleLog)
	if err != nil {
		vm.Cleanup()
		return nil, fmt.Errorf("boot: console log: %w", err)
	}
	vm.log = log
	vm.args = Args(cfg)
	cmd := exec.Command(cfg.QEMU, vm.args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		vm.Cleanup()
		return nil, fmt.Errorf("boot: %w", err)
	}
	cmd.Stderr = vm.stderr
	// Pdeathsig ends QEMU if the harness dies without killing it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cfg.Interactive {
		cmd.Stdin = os.Stdin
	} else {
		// Its own process group: no terminal signals reach it, and no
		// terminal reads stop it.
		cmd.SysProcAttr.Setpgid = true
	}
	vm.cmd = cmd
	// Start from a fresh goroutine: Pdeathsig fires when the starting OS
	// thread exits, and a caller's goroutine may be locked to a thread
	// that ends with it (namespace tests do that).
	started := make(chan error, 1)
	go func() { started <- cmd.Start() }()
	if err := <-started; err != nil {
		vm.Cleanup()
		return nil, fmt.Errorf("boot: start %s: %w", cfg.QEMU, err)
	}
	sinks := []io.Writer{log, vm.console}
	if cfg.Console != nil {
		sinks = append(sinks, cfg.Console)
	}
	vm.copied.Add(1)
	go func() {
		defer vm.copied.Done()
		_, _ = io.Copy(io.MultiWriter(sinks...), stdout)
	}()
	go func() {
		vm.copied.Wait()
		vm.waitErr = cmd.Wait()
		vm.console.close()
		_ = log.Sync()
		close(vm.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			vm.Kill()
		case <-vm.done:
		}
	}()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-vm.done:
			cancel() // QEMU died: stop waiting for its socket
		case <-qctx.Done():
		}
	}()
	vm.qmp, err = DialQMP(qctx, cfg.QMPSocket)
	if err != nil {
		vm.Kill()
		<-vm.done
		reason := fmt.Sprintf("boot: QEMU did not come up: %v", err)
		if s := vm.stderr.String(); s != "" {
			reason += "\nqemu stderr: " + s
		}
		return nil, errors.New(reason)
	}
	return vm, nil
}

func fillDefaults(cfg *Config) error {
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return fmt.Errorf("qemu binary %q not found: %w (install qemu-system-x86)", cfg.QEMU, err)
	}
	cfg.QEMU = path
	if cfg.Kernel == "" {
		if cfg.Kernel, err = FindKernel("/boot"); err != nil {
			return err
		}
	}
	if st, err := os.Stat(cfg.Kernel); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("kernel %s missing or not a file: %v (install linux-image-amd64, or pass --kernel)", cfg.Kernel, err)
	}
	if cfg.Initrd == "" {
		return errors.New("boot: no initramfs given")
	}
	if _, err := os.Stat(cfg.Initrd); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	for _, d := range cfg.Disks {
		if _, err := os.Stat(d); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}
	for _, d := range cfg.HotplugDisks {
		if _, err := os.Stat(d.File); err != nil {
			return fmt.Errorf("hotplug disk %s: %w", d.ID, err)
		}
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = 1024
	}
	if cfg.SMP <= 0 {
		cfg.SMP = 1
	}
	return nil
}

// QMP is the VM's monitor connection.
func (vm *VM) QMP() *QMP { return vm.qmp }

// Args are the QEMU arguments this VM was started with.
func (vm *VM) Args() []string { return append([]string(nil), vm.args...) }

// Done is closed when QEMU has exited and its output is read.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Wait waits for QEMU to exit and returns its exit error (nil for status
// 0, which is what a guest poweroff gives).
func (vm *VM) Wait() error {
	<-vm.done
	if vm.qmp != nil {
		vm.qmp.Close()
	}
	return vm.waitErr
}

// Kill ends QEMU with SIGKILL; it is safe to call more than once.
func (vm *VM) Kill() {
	select {
	case <-vm.done:
		return
	default:
	}
	if vm.cmd != nil && vm.cmd.Process != nil {
		_ = vm.cmd.Process.Kill()
	}
}

// WaitForLine waits for a console line containing substr (looking at the
// whole console so far first) and returns it. It fails when QEMU exits or
// ctx ends first.
func (vm *VM) WaitForLine(ctx context.Context, substr string) (string, error) {
	line, _, err := vm.console.waitLine(ctx, 0, func(l string) bool { return strings.Contains(l, substr) })
	if errors.Is(err, io.EOF) {
		return "", fmt.Errorf("QEMU exited before console line %q", substr)
	}
	if err != nil {
		return "", fmt.Errorf("waiting for console line %q: %w", substr, err)
	}
	return line, nil
}

// Console returns the whole serial output so far, carriage returns removed.
func (vm *VM) Console() string { return vm.console.text() }

// ConsoleTail returns the last n console lines.
func (vm *VM) ConsoleTail(n int) string { return vm.console.tail(n) }

// ConsoleLog is the path of the raw console log.
func (vm *VM) ConsoleLog() string { return vm.logPath }

// Stderr is what QEMU wrote to its standard error.
func (vm *VM) Stderr() string { return vm.stderr.String() }

// Cleanup kills QEMU if it still runs and removes the work directory if
// Boot made it (the console log with it, unless it was placed elsewhere).
func (vm *VM) Cleanup() {
	vm.Kill()
	if vm.cmd != nil && vm.cmd.Process != nil {
		<-vm.done
	}
	if vm.log != nil {
		vm.log.Close()
	}
	if vm.ownsWork {
		os.RemoveAll(vm.workDir)
	}
}
