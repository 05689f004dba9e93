package units

import (
	"path/filepath"
	"testing"

	"vigil/units/unitfile"
)

// BenchmarkSetupExecDirectories is what a start of a unit with five
// directories (one of each kind) pays when they exist already: the usual
// case, every process of the unit after the first.
func BenchmarkSetupExecDirectories(b *testing.B) {
	base := b.TempDir()
	m := &Manager{opts: Options{ExecDirectoryRoots: ExecDirectoryRoots{Runtime: filepath.Join(base, "run"),
		State: filepath.Join(base, "lib"), Cache: filepath.Join(base, "cache"), Logs: filepath.Join(base, "log"),
		Configuration: filepath.Join(base, "etc")}}}
	ec := &unitfile.ExecContext{RuntimeDirectory: []string{"x"}, StateDirectory: []string{"x"}, CacheDirectory: []string{"x"},
		LogsDirectory: []string{"x"}, ConfigurationDirectory: []string{"x"}, RuntimeDirectoryMode: 0o755,
		StateDirectoryMode: 0o700, CacheDirectoryMode: 0o755, LogsDirectoryMode: 0o755, ConfigurationDirectoryMode: 0o755}
	if _, err := m.setupExecDirectories(ec); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.setupExecDirectories(ec); err != nil {
			b.Fatal(err)
		}
	}
}
