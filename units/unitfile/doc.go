// Package unitfile owns Vigil's unit files: their names, the TOML schema
// with systemd's names and semantics, the parsing and checking of every
// value, and the search of unit directories with drop-ins, templates,
// aliases, masks and .wants/.requires links. The manager (package units)
// consumes the decoded Unit; nothing here starts anything.
//
// # Files and search path
//
// A unit NAME.TYPE is one TOML file found in the first directory of Paths
// that has it (DefaultPaths: /etc/vigil/units, /run/vigil/units,
// /usr/lib/vigil/units). Drop-ins NAME.TYPE.d/*.toml, the template's
// NAME@.TYPE.d/*.toml and TYPE.d/*.toml from every directory are applied
// after the unit file, sorted by file name (a name in an earlier directory
// hides the same name in a later one). A symlink to another unit's file is
// an alias; a symlink to /dev/null or an empty file masks the unit.
//
// # Merging
//
// Every file is applied in order onto one Unit that starts with the
// defaults: a scalar key replaces the value so far; a list key appends; an
// empty list [] or empty string "" resets the list (systemd's empty
// assignment). Tables (environment, limits, conditions) merge per key.
//
// # Values
//
// Keys are kebab-case systemd names: Restart= is restart, ExecStartPre= is
// exec-start-pre. Booleans are TOML booleans. Durations are systemd time
// spans ("1min 30s", "500ms", "infinity") or TOML numbers of seconds;
// sizes take base-1024 suffixes ("512M"); unit lists are arrays or one
// string of names separated by spaces.
//
// Exec keys (see Commands): exec-start is one command, a string split with
// shell quoting (SplitCommandLine) or an array of words; the other exec-*
// keys take a string (one command line), an array of strings (several
// command lines) or an array of arrays (several word lists). systemd's
// prefixes -, @, :, +, ! and !! are read on the first word in every form.
// $VAR and ${VAR} are kept for expansion at run time; %-specifiers are
// expanded at load time in every string value (see ExpandSpecifiers).
//
// # Problems
//
// Loading never stops at the first problem: each one is a Problem with the
// file, line, column, section and key ("units/foo.service:12:3: [service]
// restart-secs: unknown key (did you mean 'restart-sec'?)"). Errors make
// the unit bad-setting; warnings (an executable that is not there) do not.
// Positions come from a small scanner of the TOML source (position.go),
// run only when a file has a problem to place.
//
// The key table is built from the struct tags of Unit and its sections by
// reflection, once per Load, Scan or Check call: the package has no
// mutable global state.
package unitfile
