// Package shutdown owns the last stage of stopping the machine, after the
// units are stopped: signalling and waiting for the processes left over,
// syncing, unmounting every file system in reverse order (lazily as a last
// resort), remounting the root read-only, and the reboot(2) call itself.
//
// Nothing here reaps children: PID 1's reaper does, and WaitForProcesses
// only watches /proc. The functions work in any PID and mount namespace,
// which is how they are tested without touching the host.
package shutdown

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Action is what to do when everything is stopped.
type Action int

// The actions reboot(2) offers.
const (
	PowerOff Action = iota
	Restart
	Halt
)

func (a Action) String() string {
	switch a {
	case PowerOff:
		return "poweroff"
	case Restart:
		return "reboot"
	case Halt:
		return "halt"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// rebootCmd maps an action to reboot(2)'s command.
func (a Action) rebootCmd() (int, error) {
	switch a {
	case PowerOff:
		return unix.LINUX_REBOOT_CMD_POWER_OFF, nil
	case Restart:
		return unix.LINUX_REBOOT_CMD_RESTART, nil
	case Halt:
		return unix.LINUX_REBOOT_CMD_HALT, nil
	}
	return 0, fmt.Errorf("unknown shutdown action %d", int(a))
}

// Reboot syncs and calls reboot(2). As PID 1 of the initial PID namespace
// it does not return on success. In a child PID namespace the kernel
// instead kills that namespace's init (SIGHUP for Restart, SIGINT for
// PowerOff and Halt), which is how containers see it.
func Reboot(action Action) error {
	cmd, err := action.rebootCmd()
	if err != nil {
		return err
	}
	unix.Sync()
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("reboot(%s): %w", action, err)
	}
	return nil
}
