package mountinfo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

const sample = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
40 25 0:35 / /mnt/my\040disk rw,relatime - tmpfs tmp\134fs rw,size=1024k
41 25 254:16 /sub /srv/data ro,nosuid master:3 unbindable - ext4 /dev/vdb rw
`

func TestParseDecodesEscapesAndTags(t *testing.T) {
	ms, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("%d mounts, want 4", len(ms))
	}
	m := ms[2]
	if m.MountPoint != "/mnt/my disk" || m.Source != `tmp\fs` || m.FSType != "tmpfs" || m.ParentID != 25 || m.ID != 40 {
		t.Errorf("escaped line parsed as %+v", m)
	}
	if got := m.AllOptions(); got != "rw,relatime,rw,size=1024k" {
		t.Errorf("AllOptions = %q", got)
	}
	b := ms[3]
	if b.Root != "/sub" || b.Major != 254 || b.Minor != 16 || len(b.Optional) != 2 || b.Optional[1] != "unbindable" || b.Options != "ro,nosuid" {
		t.Errorf("bind line parsed as %+v", b)
	}
	for _, m := range ms {
		again, err := ParseLine(m.Format())
		if err != nil || again.MountPoint != m.MountPoint || again.Source != m.Source || again.ID != m.ID {
			t.Errorf("round trip of %+v gave %+v, %v", m, again, err)
		}
	}
}

func TestParseNamesTheBadLine(t *testing.T) {
	for _, bad := range []string{
		"1 2 3\n",
		"x 1 0:1 / /a rw - tmpfs t rw\n",
		"1 1 01 / /a rw - tmpfs t rw\n",
		"1 1 0:1 / /a rw tmpfs t rw\n",
		"1 1 0:1 / rel rw - tmpfs t rw\n",
		"1 1 0:1 / /a rw -\n",
	} {
		_, err := Parse(strings.NewReader(sample + bad))
		if err == nil || !strings.Contains(err.Error(), "line 5") {
			t.Errorf("%q: error %v, want one naming line 5", bad, err)
		}
	}
}

func TestDiffOrdersChanges(t *testing.T) {
	old, _ := Parse(strings.NewReader(sample))
	now := append([]Mount(nil), old[:2]...)
	remounted := old[3]
	remounted.Options = "rw,nosuid"
	now = append(now, remounted,
		Mount{ID: 50, ParentID: 25, MountPoint: "/a", FSType: "tmpfs", Source: "tmpfs"},
		Mount{ID: 51, ParentID: 50, MountPoint: "/a/b", FSType: "tmpfs", Source: "tmpfs"})
	var got []string
	for _, c := range Diff(old, now) {
		got = append(got, c.Kind+" "+c.Mount.MountPoint)
	}
	want := "umount /mnt/my disk|remount /srv/data|mount /a|mount /a/b"
	if strings.Join(got, "|") != want {
		t.Errorf("Diff = %q, want %q", strings.Join(got, "|"), want)
	}
	if d := Diff(old, old); len(d) != 0 {
		t.Errorf("Diff of equal tables = %v", d)
	}
}

// FuzzParse: no input panics; every parsed mount formats to a line that
// parses back to the same mount.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("1 1 0:1 / / rw - rootfs rootfs rw\n"))
	f.Add([]byte("1 1 0:1 \\ /\\0 rw - a b\n"))
	f.Add([]byte("4294967296 1 0:1 / / rw - a b\n"))
	f.Add([]byte("\n\n  \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, _ := Parse(strings.NewReader(string(data)))
		for _, m := range ms {
			again, err := ParseLine(m.Format())
			if err != nil {
				// Paths with characters Format does not escape (a
				// vertical tab splits fields too) need not round-trip.
				if strings.ContainsFunc(m.MountPoint+m.Root+m.Source+m.FSType, func(r rune) bool { return unicode.IsSpace(r) && !strings.ContainsRune(" \t\n", r) }) || m.MountPoint == "" {
					continue
				}
				t.Fatalf("Format of %+v gives %q: %v", m, m.Format(), err)
			}
			if again.MountPoint != m.MountPoint || again.ID != m.ID || again.Source != m.Source {
				t.Fatalf("round trip %+v -> %+v", m, again)
			}
		}
	})
}

func startWatcher(t *testing.T, opts Options) (*Watcher, chan *observer.Event) {
	t.Helper()
	w, got, _ := startWatcherWithLoop(t, opts)
	return w, got
}

func waitFor(t *testing.T, got chan *observer.Event, kind, where string) *observer.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-got:
			if ev.Kind == kind && ev.Attr("where") == where {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event for %s", kind, where)
		}
	}
}

func TestWatcherSeesMountRemountUmount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	where := filepath.Join(dir, "a dir")
	os.Mkdir(where, 0o755)
	w, got := startWatcher(t, Options{})
	// The present table arrives first, marked initial.
	root := waitFor(t, got, KindMount, "/")
	if root.Attr("initial") != "1" {
		t.Errorf("initial mount event without initial=1: %v", root)
	}
	if err := unix.Mount("vigiltest", where, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	defer unix.Unmount(where, unix.MNT_DETACH)
	ev := waitFor(t, got, KindMount, where)
	if ev.Attr("what") != "vigiltest" || ev.Attr("fstype") != "tmpfs" || !strings.Contains(ev.Attr("options"), "size=64k") {
		t.Errorf("mount event %v", ev)
	}
	if m, ok := ev.Payload.(Mount); !ok || m.MountPoint != where {
		t.Errorf("payload %#v", ev.Payload)
	}
	if err := unix.Mount("", where, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	ev = waitFor(t, got, KindRemount, where)
	if !strings.HasPrefix(ev.Attr("options"), "ro") {
		t.Errorf("remount event options %q", ev.Attr("options"))
	}
	if err := unix.Unmount(where, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, got, KindUmount, where)
	if st := w.Stats(); st.Reads < 3 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestWatcherRefusesMissingFile(t *testing.T) {
	loop := observer.New(observer.Options{})
	if _, err := Watch(loop, Options{Path: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Fatal("Watch of a missing file succeeded")
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(DefaultPath)
	if err != nil {
		b.Skip(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(string(data))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMountEventLatency measures from mount(2) returning to the
// "mount" event reaching an observer on the loop (and the same for the
// umount), on the host's real mount table.
func BenchmarkMountEventLatency(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root")
	}
	dir := b.TempDir()
	where := filepath.Join(dir, "m")
	os.Mkdir(where, 0o755)
	loop := observer.New(observer.Options{})
	got := make(chan string, 64)
	loop.Register(observer.Observer{Guest: "bench", Filter: observer.Filter{Terms: []observer.Term{{Key: "where", Op: observer.OpEq, Values: []string{where}}}},
		Notify: func(ev *observer.Event) { got <- ev.Kind }})
	w, err := Watch(loop, Options{NoInitial: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	defer func() { w.Close(); cancel(); <-done }()
	for b.Loop() {
		if err := unix.Mount("bench", where, "tmpfs", 0, "size=64k"); err != nil {
			b.Skip(err)
		}
		if k := <-got; k != KindMount {
			b.Fatalf("got %s", k)
		}
		if err := unix.Unmount(where, 0); err != nil {
			b.Fatal(err)
		}
		if k := <-got; k != KindUmount {
			b.Fatalf("got %s", k)
		}
	}
}
