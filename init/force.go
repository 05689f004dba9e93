package pid1

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func forceShutdown(action string) int {
	unix.Sync()
	cmd := map[string]int{"poweroff": unix.LINUX_REBOOT_CMD_POWER_OFF, "reboot": unix.LINUX_REBOOT_CMD_RESTART, "halt": unix.LINUX_REBOOT_CMD_HALT}[action]
	if err := unix.Reboot(cmd); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", action, err)
		return 1
	}
	return 0
}
