package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"vigil/units/unitfile"
)

func (e *env) runCheck(p *parsed) int {
	problems := checkUnitFiles(p.args)
	if e.json {
		e.printJSON(nonNil(problems))
	} else {
		for _, pr := range problems {
			fmt.Fprintln(e.stderr, pr)
		}
	}
	if len(problems) > 0 {
		return exitFailure
	}
	return exitOK
}

// checkUnitFiles validates unit files without a manager, returning one
// "file:line:column: message" line per problem.
//
// Interim: this checks the file name and the TOML syntax, and that the top
// level holds only sections. It is meant to become a call of
// unitfile.Check(files...) once the unit loader offers it; only this
// function needs to change.
func checkUnitFiles(files []string) []string {
	var problems []string
	for _, file := range files {
		problems = append(problems, checkUnitFile(file)...)
	}
	return problems
}

func checkUnitFile(file string) []string {
	name := strings.TrimSuffix(filepath.Base(file), ".toml")
	var problems []string
	if _, err := unitfile.ParseName(name); err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", file, err))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return append(problems, fmt.Sprintf("%s: %v", file, err))
	}
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return append(problems, fmt.Sprintf("%s:%d:%d: %s", file, pe.Position.Line, pe.Position.Col, pe.Message))
		}
		return append(problems, fmt.Sprintf("%s: %v", file, err))
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := doc[k].(map[string]any); !ok {
			problems = append(problems, fmt.Sprintf("%s:%d: key %q outside of any section (sections are [unit], [install], [%s]...)", file, keyLine(md, k, string(data)), k, unitType(name)))
		}
	}
	return problems
}

func unitType(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return "service"
}

// keyLine finds the line of a top-level key, for messages.
func keyLine(_ toml.MetaData, key, text string) int {
	for i, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, key) && strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(l, key)), "=") {
			return i + 1
		}
	}
	return 1
}
