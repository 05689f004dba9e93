package fanotify

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vigil/observer"
)

// BenchmarkReresolve measures one resolution of every mark again (stat of
// each component, kernel marks, inotify watches of every ancestor): what a
// relevant path watcher record costs, and what the fanotify reader waits
// when it catches up on an open of a pending mark's first missing
// component (catchUp). Half the marks are of existing files, half of
// paths two components short, all four levels below a temporary
// directory.
func BenchmarkReresolve(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("marks-%d", n), func(b *testing.B) {
			src, err := New(Options{Loop: observer.New(observer.Options{})})
			if err != nil {
				b.Skipf("fanotify: %v", err)
			}
			defer src.Close()
			dir := b.TempDir()
			for i := range n {
				p := filepath.Join(dir, fmt.Sprintf("d%d", i%4), fmt.Sprintf("e%d", i%8), "f", fmt.Sprintf("file%d", i))
				if i%2 == 0 {
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						b.Fatal(err)
					}
					if err := os.WriteFile(p, nil, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := src.Mark(p, Open); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				src.reresolve()
			}
		})
	}
}

// BenchmarkOpenBesidePendingMark: open(2)+close(2) of a file that no mark
// asks for, in the directory that stands in for a pending mark (covered
// with open events of its children): the price of a pending mark for its
// neighbours, a reader round trip answered at once (the reader's
// catch-up check adds one map lookup to it).
func BenchmarkOpenBesidePendingMark(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("fanotify needs root")
	}
	for _, pending := range []bool{false, true} {
		b.Run(fmt.Sprintf("pending-%v", pending), func(b *testing.B) {
			path := tempFileB(b)
			if pending {
				stop := sourceWith(false)(b, filepath.Join(filepath.Dir(path), "missing", "file"), Open)
				defer stop()
			}
			runHelper(b, "open", path)
		})
	}
}
