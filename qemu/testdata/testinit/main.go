// Command testinit is a stand-in for Vigil in the qemu package's boot
// tests: as PID 1 it prints Vigil's console contract lines, runs the unit
// vigil.wants= names (exec-start read from the unit file, so the unit the
// harness writes is really parsed and run), and powers off or reboots on
// the signals systemd uses. Run as "initctl poweroff|reboot|halt" it sends
// those signals to PID 1.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// Signals systemd (and Vigil) take as halt, poweroff and reboot requests:
// SIGRTMIN+3, +4, +5 with glibc's SIGRTMIN of 34.
const (
	sigHalt     = syscall.Signal(37)
	sigPoweroff = syscall.Signal(38)
	sigReboot   = syscall.Signal(39)
)

func main() {
	if os.Getpid() != 1 {
		os.Exit(initctl(os.Args[1:]))
	}
	pid1()
}

func initctl(args []string) int {
	sigs := map[string]syscall.Signal{"halt": sigHalt, "poweroff": sigPoweroff, "reboot": sigReboot}
	if len(args) != 1 || sigs[args[0]] == 0 {
		fmt.Fprintln(os.Stderr, "usage: initctl poweroff|reboot|halt")
		return 2
	}
	if err := syscall.Kill(1, sigs[args[0]]); err != nil {
		fmt.Fprintln(os.Stderr, "initctl:", err)
		return 1
	}
	return 0
}

func uptime() float64 {
	data, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func pid1() {
	_ = syscall.Mount("proc", "/proc", "proc", 0, "")
	_ = syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd < 3; fd++ {
			_ = syscall.Dup3(int(c.Fd()), fd, 0)
		}
	}
	execAt := uptime()
	// Ctrl-Alt-Del becomes SIGINT to PID 1, as under systemd.
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_CAD_OFF)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, sigHalt, sigPoweroff, sigReboot)

	cmdline, _ := os.ReadFile("/proc/cmdline")
	now := uptime()
	fmt.Printf("vigil: reached default target multi-user.target at uptime %.3fs (+%.3fs after init exec)\n", now, now-execAt)
	args := strings.Fields(string(cmdline))
	for _, a := range args {
		if a == "testinit.hang" {
			select {}
		}
	}
	for _, a := range args {
		if unit, ok := strings.CutPrefix(a, "vigil.wants="); ok {
			go runUnit(unit)
		}
	}
	for sig := range sigs {
		switch sig {
		case syscall.SIGINT, sigReboot:
			shutdown("reboot", syscall.LINUX_REBOOT_CMD_RESTART)
		case sigHalt:
			shutdown("halt", syscall.LINUX_REBOOT_CMD_HALT)
		case sigPoweroff:
			shutdown("poweroff", syscall.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}
}

func runUnit(name string) {
	var unit struct {
		Service struct {
			ExecStart []string `toml:"exec-start"`
		}
	}
	path := "/etc/vigil/units/" + name
	if _, err := toml.DecodeFile(path, &unit); err != nil || len(unit.Service.ExecStart) == 0 {
		fmt.Printf("testinit: unit %s: %v\n", path, err)
		return
	}
	cmd := exec.Command(unit.Service.ExecStart[0], unit.Service.ExecStart[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/sbin:/bin:/usr/sbin:/usr/bin", "HOME=/root"}
	if err := cmd.Run(); err != nil {
		fmt.Printf("testinit: unit %s: %v\n", name, err)
	}
}

func shutdown(action string, how int) {
	syscall.Sync()
	fmt.Printf("vigil: shutdown complete: %s clean\n", action)
	time.Sleep(10 * time.Millisecond)
	_ = syscall.Reboot(how)
	select {}
}
