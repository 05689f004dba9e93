package cli

import (
	"fmt"

	"vigil/units/unitfile"
)

func (e *env) runCheck(p *parsed) int {
	problems, failed := checkUnitFiles(p.args)
	if e.json {
		e.printJSON(nonNil(problems))
	} else {
		for _, pr := range problems {
			fmt.Fprintln(e.stderr, pr)
		}
	}
	if failed {
		return exitFailure
	}
	return exitOK
}

// checkUnitFiles validates unit files without a manager, returning one
// "file:line:column: message" line per problem (warnings included; only
// errors make check fail).
func checkUnitFiles(files []string) (lines []string, failed bool) {
	_, problems := unitfile.Check(unitfile.DefaultContext(), files...)
	for _, p := range problems {
		lines = append(lines, p.Error())
		if p.Severity == unitfile.SeverityError {
			failed = true
		}
	}
	return lines, failed
}
