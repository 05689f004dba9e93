package pid1

import (
	"fmt"
	"os"

	"vigil/units/cgroup"
)

// EnterInitScope moves PID 1 into init.scope at the top of the cgroup2
// hierarchy, where systemd keeps it too: the root then holds no process
// of ours, every unit's group is a sibling or a descendant of a slice,
// and accounting of the root's children adds up to the machine. Call it
// once, after the API file systems are mounted and before the manager
// starts units; a failure is worth a console line, never a failed boot.
func EnterInitScope() error {
	if os.Getpid() != 1 {
		return fmt.Errorf("init.scope: only PID 1 moves itself there")
	}
	tree, err := cgroup.ForPID1()
	if err != nil {
		return fmt.Errorf("init.scope: %w", err)
	}
	if err := tree.Ensure(cgroup.InitScope); err != nil {
		return fmt.Errorf("init.scope: %w", err)
	}
	if err := tree.Move(cgroup.InitScope, os.Getpid()); err != nil {
		return fmt.Errorf("init.scope: %w", err)
	}
	return nil
}
