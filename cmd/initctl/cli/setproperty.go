package cli

import (
	"fmt"

	"vigil/units/api"
)

// setPropertyCommand is `initctl set-property UNIT KEY=VALUE...`.
func setPropertyCommand() *command {
	return &command{Name: "set-property", Args: "UNIT KEY=VALUE...",
		Summary: "Change [resources] settings of a unit, applied at once to its cgroup and kept in a drop-in",
		Flags:   []flagSpec{{Long: "runtime", Help: "keep the change only until the next boot (under /run)"}},
		MinArgs: 2, MaxArgs: -1, Run: (*env).runSetProperty}
}

func (e *env) runSetProperty(p *parsed) int {
	args := api.SetPropertyArgs{Unit: p.args[0], Properties: p.args[1:], Runtime: p.has("runtime")}
	var res api.SetPropertyResult
	if err := e.call(api.MethodSetProperty, args, &res, nil); err != nil {
		return e.failNotFound("set unit properties", err, exitNoSuchUnit)
	}
	if e.json {
		return e.printJSON(res)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "Warning: %s\n", w)
	}
	return exitOK
}
