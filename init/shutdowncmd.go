package pid1

import (
	"context"
	"fmt"
	"os"
	"time"

	"vigil/observer/control"
	"vigil/units/api"
)

// DefaultControlSocket is PID 1's control socket.
const DefaultControlSocket = "/run/vigil/control.sock"

// ShutdownCommand is what vigil does when invoked as poweroff, reboot or
// halt: ask the running manager for an ordered shutdown.
func ShutdownCommand(action string, args []string) int {
	for _, a := range args {
		if a == "-f" || a == "--force" {
			// Forced: no ordered shutdown, as busybox and systemd do.
			return forceShutdown(action)
		}
	}
	path := os.Getenv("VIGIL_CONTROL_SOCKET")
	if path == "" {
		path = DefaultControlSocket
	}
	c, err := control.Dial(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot reach vigil at %s: %v\n", action, path, err)
		return 1
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Call(ctx, api.MethodShutdown, api.ShutdownArgs{Action: action}, nil, nil); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", action, err)
		return 1
	}
	return 0
}
