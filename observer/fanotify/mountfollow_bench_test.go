package fanotify

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// benchMarks opens a source with n marks of existing files, spread over
// four directories, below dir/d on a tmpfs of the benchmark's own. It
// returns the source and dir/d.
func benchMarks(b *testing.B, n int) (*Source, string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("fanotify and mounts need root")
	}
	src, err := New(Options{Loop: observer.New(observer.Options{})})
	if err != nil {
		b.Skipf("fanotify: %v", err)
	}
	b.Cleanup(func() { src.Close() })
	if src.mounts == nil {
		b.Skip("no mount follower")
	}
	d := filepath.Join(ownTmpfs(b), "d")
	for i := range n {
		p := filepath.Join(d, fmt.Sprintf("d%d", i%4), fmt.Sprintf("file%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if _, err := src.Mark(p, Open); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return src, d
}

// BenchmarkMountChangeUnrelated is what every change of the mount table
// costs with n marks when none of them moves (the common case: a mount
// elsewhere): one resolution of each mark, compared with the last.
func BenchmarkMountChangeUnrelated(b *testing.B) {
	for _, n := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("marks-%d", n), func(b *testing.B) {
			src, _ := benchMarks(b, n)
			// The follower would race the calls below for the lock.
			src.mounts.sig.Stop()
			for b.Loop() {
				if src.mountsChanged() {
					b.Fatal("marks moved with no mount")
				}
			}
		})
	}
}

// BenchmarkMountOverMarks is a tmpfs mounted over the directory above n
// marks and unmounted again, with the follower and path watcher running:
// one op is mount(2), the follower moving every mark to the new file
// system's root (the hidden files' kernel marks removed through their
// handles), umount(2), and the marks moved back onto the files (by the
// path watcher, which sees the unmount, or the follower, whichever comes
// first). marks-0 is the mount and unmount alone.
func BenchmarkMountOverMarks(b *testing.B) {
	for _, n := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("marks-%d", n), func(b *testing.B) {
			src, d := benchMarks(b, n)
			first := filepath.Join(d, "d0", "file0")
			cleanupMount(b, d)
			b.ResetTimer()
			for range b.N {
				if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
					b.Fatal(err)
				}
				if n > 0 {
					root, _ := statID(d)
					waitApplied(b, src, func(a map[targetKey]*target) bool {
						_, ok := a[targetKey{dev: root.dev, ino: root.ino}]
						return ok && len(a) == 1
					})
				}
				unmount(b, d)
				if n > 0 {
					file, _ := statID(first)
					waitApplied(b, src, func(a map[targetKey]*target) bool {
						_, ok := a[targetKey{dev: file.dev, ino: file.ino}]
						return ok && len(a) == n
					})
				}
			}
		})
	}
}

// waitApplied spins until the kernel marks applied satisfy ok.
func waitApplied(b *testing.B, src *Source, ok func(map[targetKey]*target) bool) {
	deadline := time.Now().Add(wait)
	for {
		src.mu.Lock()
		done := ok(src.applied)
		src.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("marks not moved within %v", wait)
		}
		runtime.Gosched()
	}
}
