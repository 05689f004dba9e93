package cli

import (
	"fmt"
	"strconv"

	"vigil/units/api"
)

// runCancel cancels the jobs named by ID, or every job when none is named,
// as `systemctl cancel` does.
func (e *env) runCancel(p *parsed) int {
	var args api.CancelArgs
	for _, a := range p.args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			fmt.Fprintf(e.stderr, "%s cancel: %q is not a job ID (see list-jobs)\n", e.program, a)
			return exitUsage
		}
		args.IDs = append(args.IDs, id)
	}
	var res api.CancelResult
	if err := e.call(api.MethodCancel, args, &res, nil); err != nil {
		return e.fail("cancel", err)
	}
	if e.json {
		return e.printJSON(res)
	}
	return exitOK
}
