package logs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func texts(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCaptureFromARealProcess(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", `echo one; printf 'two\r\n'; printf 'bad \377 utf8\n'; printf partial`},
		&syscall.ProcAttr{Files: []uintptr{0, w.Fd(), w.Fd()}})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := s.Capture("demo.service", pid, StreamStdout, r)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
	<-done

	want := []string{"one", "two", "bad \377 utf8", "partial"}
	got := s.Tail("demo.service", 0, time.Time{})
	if !slices.Equal(texts(got), want) {
		t.Fatalf("ring: %q, want %q", texts(got), want)
	}
	for _, l := range got {
		if l.PID != pid || l.Stream != StreamStdout || l.Unit != "demo.service" || l.Time.IsZero() {
			t.Errorf("line %+v", l)
		}
	}
	// The same lines, read back from disk by a fresh store.
	s2 := open(t, dir, Options{})
	if got := texts(s2.Tail("demo.service", 0, time.Time{})); !slices.Equal(got, want) {
		t.Errorf("disk: %q", got)
	}
}

func TestLongLinesAreCut(t *testing.T) {
	s := open(t, "", Options{MaxLineLength: 100})
	r, w, _ := os.Pipe()
	done := s.Capture("u", 1, StreamStdout, r)
	long := strings.Repeat("x", 250)
	// "é" straddles the cut at 100: it must move whole to the next piece.
	w.WriteString(long + "\n" + strings.Repeat("a", 99) + "é" + "tail\n")
	w.Close()
	<-done
	got := texts(s.Tail("u", 0, time.Time{}))
	want := []string{strings.Repeat("x", 100), strings.Repeat("x", 100), strings.Repeat("x", 50), strings.Repeat("a", 99), "étail"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
}

func TestAppendSplitsLines(t *testing.T) {
	s := open(t, "", Options{})
	s.Append("u", "", "Started Foo.\nsecond line")
	s.Append("u", "", "")
	got := s.Tail("u", 0, time.Time{})
	if !slices.Equal(texts(got), []string{"Started Foo.", "second line", ""}) || got[0].Stream != StreamVigil || got[0].PID != 0 {
		t.Errorf("got %+v", got)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxFileSize: 300, KeepFiles: 2})
	for i := range 60 {
		s.Append("rot.service", "", fmt.Sprintf("line %d", i))
	}
	base := filepath.Join(dir, "rot.service.log")
	var onDisk []string
	for _, p := range []string{base + ".2", base + ".1", base} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(b) > 300 || len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("%s: %d bytes, ends %q", p, len(b), b[max(len(b)-1, 0):])
		}
		for _, rec := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			l, ok := parseRecord([]byte(rec), "rot.service")
			if !ok {
				t.Fatalf("bad record %q", rec)
			}
			onDisk = append(onDisk, l.Text)
		}
	}
	if _, err := os.Stat(base + ".3"); !os.IsNotExist(err) {
		t.Errorf("a third rotated file exists: %v", err)
	}
	// What is on disk is the newest contiguous part of the log.
	first := 60 - len(onDisk)
	if len(onDisk) < 10 || !slices.Equal(onDisk, numbered("line ", first, 60)) {
		t.Errorf("on disk: %q", onDisk)
	}
	// The ring outlives the rotated files: the store that wrote them still
	// has every line.
	if got := texts(s.Tail("rot.service", 0, time.Time{})); !slices.Equal(got, numbered("line ", 0, 60)) {
		t.Errorf("tail from the ring: %q", got)
	}
	// A fresh store (empty ring) tails across the rotated files.
	s2 := open(t, dir, Options{MaxFileSize: 300, KeepFiles: 2})
	if got := texts(s2.Tail("rot.service", 0, time.Time{})); !slices.Equal(got, onDisk) {
		t.Errorf("tail across rotated files: %q", got)
	}
	if got := texts(s2.Tail("rot.service", 5, time.Time{})); !slices.Equal(got, onDisk[len(onDisk)-5:]) {
		t.Errorf("tail 5: %q", got)
	}
}

func fmtLines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

func TestTailFallsBackToDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{RingLines: 5})
	all := fmtLines("l", 20)
	for _, l := range all {
		s.Append("u", "", l)
	}
	if got := texts(s.Tail("u", 3, time.Time{})); !slices.Equal(got, all[17:]) {
		t.Errorf("tail 3 from ring: %q", got)
	}
	if got := texts(s.Tail("u", 12, time.Time{})); !slices.Equal(got, all[8:]) {
		t.Errorf("tail 12 through disk: %q", got)
	}
	if got := texts(s.Tail("u", 0, time.Time{})); !slices.Equal(got, all) {
		t.Errorf("tail all: %q", got)
	}
	// Without a directory the ring is all there is.
	mem := open(t, "", Options{RingLines: 5})
	for _, l := range all {
		mem.Append("u", "", l)
	}
	if got := texts(mem.Tail("u", 12, time.Time{})); !slices.Equal(got, all[15:]) {
		t.Errorf("memory-only tail: %q", got)
	}
}

func TestTailAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s1, _ := Open(dir, Options{})
	for _, l := range fmtLines("old", 10) {
		s1.Append("u", "", l)
	}
	s1.Close()
	s2 := open(t, dir, Options{RingLines: 3})
	for _, l := range fmtLines("new", 5) {
		s2.Append("u", "", l)
	}
	want := append(fmtLines("old", 10), fmtLines("new", 5)...)
	if got := texts(s2.Tail("u", 0, time.Time{})); !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
}

func TestTailSince(t *testing.T) {
	s := open(t, t.TempDir(), Options{RingLines: 2})
	s.Append("u", "", "before1")
	s.Append("u", "", "before2")
	time.Sleep(5 * time.Millisecond)
	mark := time.Now()
	for _, l := range []string{"after1", "after2", "after3"} {
		s.Append("u", "", l)
	}
	if got := texts(s.Tail("u", 0, mark)); !slices.Equal(got, []string{"after1", "after2", "after3"}) {
		t.Errorf("since: %q", got)
	}
}

func TestTailAllUnitsMergedByTime(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	var want []string
	for i := range 6 {
		unit := []string{"a.service", "b.service"}[i%2]
		text := fmt.Sprintf("%s %d", unit, i)
		s.Append(unit, "", text)
		want = append(want, text)
	}
	if got := texts(s.Tail("", 0, time.Time{})); !slices.Equal(got, want) {
		t.Errorf("merged: %q", got)
	}
	if got := texts(s.Tail("", 2, time.Time{})); !slices.Equal(got, want[4:]) {
		t.Errorf("merged tail 2: %q", got)
	}
	// Units known only from disk are included after a restart.
	s2 := open(t, dir, Options{})
	if got := texts(s2.Tail("", 0, time.Time{})); !slices.Equal(got, want) {
		t.Errorf("merged from disk: %q", got)
	}
}

func TestFollow(t *testing.T) {
	s := open(t, "", Options{})
	ch, cancel := s.Follow("a")
	all, cancelAll := s.Follow("")
	defer cancelAll()
	s.Append("a", "", "for a")
	s.Append("b", "", "for b")
	if l := <-ch; l.Text != "for a" {
		t.Errorf("follower of a got %q", l.Text)
	}
	select {
	case l := <-ch:
		t.Errorf("follower of a got %q", l.Text)
	default:
	}
	if a, b := <-all, <-all; a.Text != "for a" || b.Text != "for b" {
		t.Errorf("follower of all got %q, %q", a.Text, b.Text)
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	s.Append("a", "", "after cancel") // must not panic on a closed channel
}

func TestSlowFollowerDropsWithoutBlockingCapture(t *testing.T) {
	s := open(t, "", Options{FollowBuffer: 4})
	ch, cancel := s.Follow("u")
	defer cancel()
	r, w, _ := os.Pipe()
	done := s.Capture("u", 7, StreamStdout, r)
	for i := range 20 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	w.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("capture blocked on a follower that does not read")
	}
	if got := len(s.Tail("u", 0, time.Time{})); got != 20 {
		t.Errorf("ring has %d lines, want 20", got)
	}
	if d := s.Stats().FollowerDrops; d != 16 {
		t.Errorf("drops = %d, want 16", d)
	}
	for range 4 {
		<-ch
	}
	s.Append("u", "", "next")
	if m := <-ch; m.Stream != StreamVigil || !strings.Contains(m.Text, "16 lines dropped") {
		t.Errorf("marker: %+v", m)
	}
	if l := <-ch; l.Text != "next" {
		t.Errorf("after the marker: %+v", l)
	}
}

func TestConcurrentCaptures(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxFileSize: 64 << 10})
	const writers, lines = 8, 2000
	var wg sync.WaitGroup
	var dones []<-chan struct{}
	for wi := range writers {
		r, w, _ := os.Pipe()
		unit := fmt.Sprintf("w%d.service", wi)
		dones = append(dones, s.Capture(unit, 100+wi, StreamStdout, r))
		wg.Go(func() {
			defer w.Close()
			for i := range lines {
				fmt.Fprintf(w, "%s %d\n", unit, i)
			}
		})
	}
	wg.Wait()
	for _, d := range dones {
		<-d
	}
	for wi := range writers {
		unit := fmt.Sprintf("w%d.service", wi)
		got := texts(s.Tail(unit, 0, time.Time{}))
		if !slices.Equal(got, numbered(unit+" ", 0, lines)) {
			t.Errorf("%s: %d lines, first %q", unit, len(got), got[:min(3, len(got))])
		}
	}
	if st := s.Stats(); st.Lines != writers*lines || st.Units != writers {
		t.Errorf("stats %+v", st)
	}
}

func TestUnwritableDirectoryDegradesToMemory(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	var warnings []error
	s := open(t, filepath.Join(blocker, "logs"), Options{Warn: func(err error) { warnings = append(warnings, err) }})
	s.Append("u", "", "kept in memory")
	s.Append("u", "", "still")
	if got := texts(s.Tail("u", 0, time.Time{})); !slices.Equal(got, []string{"kept in memory", "still"}) {
		t.Errorf("got %q", got)
	}
	if len(warnings) != 1 || s.Stats().DiskEnabled {
		t.Errorf("warnings %v, stats %+v", warnings, s.Stats())
	}
}

// A real full file system: a tiny tmpfs. Writing fails part-way; the store
// warns once, keeps every line in memory, and leaves no half record behind.
func TestFullDiskDegradesToMemory(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8k"); err != nil {
		t.Skip("cannot mount tmpfs:", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	var warnings []error
	s := open(t, dir, Options{MaxFileSize: 1 << 20, Warn: func(err error) { warnings = append(warnings, err) }})
	r, w, _ := os.Pipe()
	done := s.Capture("full.service", 9, StreamStdout, r)
	want := numbered("a fairly long line of output, number ", 0, 500)
	go func() {
		for _, l := range want {
			fmt.Fprintln(w, l)
		}
		w.Close()
	}()
	<-done
	if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "no space left") {
		t.Errorf("warnings: %v", warnings)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "full.service.log"))
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Errorf("file holds %d bytes, ending in a half record", len(b))
	}
	if got := texts(s.Tail("full.service", 0, time.Time{})); !slices.Equal(got, want) {
		t.Errorf("tail after the disk filled: %d lines, want %d", len(got), len(want))
	}
	// Room again: writing resumes.
	os.Remove(filepath.Join(dir, "full.service.log"))
	s.mu.Lock()
	s.units["full.service"].file = nil
	s.mu.Unlock()
	if err := s.ResumeDisk(); err != nil {
		t.Fatal(err)
	}
	s.Append("full.service", "", "back on disk")
	b, _ = os.ReadFile(filepath.Join(dir, "full.service.log"))
	if !bytes.Contains(b, []byte("back on disk")) {
		t.Errorf("after ResumeDisk the file holds %q", b)
	}
}

func TestFileNamesStayInTheDirectory(t *testing.T) {
	for _, unit := range []string{"a.service", "../../etc/passwd", "", ".", "..", ".hidden", "%2F", "x/y"} {
		name := fileName(unit)
		if strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
			t.Errorf("fileName(%q) = %q", unit, name)
		}
		if back, ok := unitOfFile(name); !ok || back != unit {
			t.Errorf("unitOfFile(fileName(%q)) = %q", unit, back)
		}
	}
}

func TestClosedStore(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{})
	ch, _ := s.Follow("")
	s.Close()
	if _, ok := <-ch; ok {
		t.Error("follower open after Close")
	}
	s.Append("u", "", "after close")
	if got := texts(s.Tail("u", 0, time.Time{})); len(got) == 0 || got[len(got)-1] != "after close" {
		t.Errorf("got %q", got)
	}
	if ch, _ := s.Follow(""); ch != nil {
		if _, ok := <-ch; ok {
			t.Error("new follower of a closed store is open")
		}
	}
}
