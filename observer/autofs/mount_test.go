package autofs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

func skipWithoutAutofs(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("autofs needs root")
	}
	if _, err := os.Stat(ControlPath); err != nil {
		t.Skipf("no %s: %v", ControlPath, err)
	}
}

// server is a fake supervisor: it answers requests on the loop the way the
// automount units do, but mounts a tmpfs itself.
type server struct {
	t     testing.TB
	loop  *observer.Loop
	src   *observer.Source
	obs   observer.ObserverID
	mnt   *Mount
	where string

	missing, expired atomic.Int32
}

// newServer serves opts.Where; onMissing decides each missing request on
// the loop and answers through answer, now or later.
func newServer(t testing.TB, opts Options, onMissing func(s *server, ev *observer.Event, answer func(observer.Verdict))) *server {
	t.Helper()
	skipWithoutAutofs(t)
	s := &server{t: t, loop: observer.New(observer.Options{Logf: t.Logf})}
	s.src = s.loop.NewSource("autofs", 0)
	if opts.Where == "" {
		opts.Where = filepath.Join(t.TempDir(), "mnt", "data")
	}
	s.where = opts.Where
	opts.Source = s.src
	opts.Logf = t.Logf
	id, err := s.loop.Register(observer.Observer{
		Guest: "test", Name: "automount",
		Filter:  observer.Filter{Terms: []observer.Term{{Key: "source", Op: observer.OpEq, Values: []string{"autofs"}}}},
		Decides: true, HoldTimeout: time.Hour, HoldDefault: observer.Deny,
		Notify: func(ev *observer.Event) {
			holdID := ev.Hold.ID
			answer := func(v observer.Verdict) {
				if err := s.loop.Answer(holdID, s.obs, v); err != nil {
					t.Errorf("answer: %v", err)
				}
			}
			switch ev.Kind {
			case KindMissing:
				s.missing.Add(1)
				onMissing(s, ev, answer)
			case KindExpire:
				s.expired.Add(1)
				if err := unix.Unmount(s.where, 0); err != nil {
					t.Logf("expire: unmount: %v", err)
					answer(observer.Deny)
					return
				}
				answer(observer.Allow)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.obs = id
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.loop.Run(ctx) }()
	m, err := Start(opts)
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	s.mnt = m
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for i := 0; i < 3; i++ {
			var sfs unix.Statfs_t
			if unix.Statfs(s.where, &sfs) != nil {
				break
			}
			if sfs.Type == SuperMagic {
				if err := m.Unmount(); err != nil {
					t.Errorf("unmount: %v", err)
				}
				break
			}
			unix.Unmount(s.where, unix.MNT_DETACH)
		}
		cancel()
		<-done
	})
	return s
}

// mountTmpfs is the fake mount unit: a tmpfs with a known file.
func mountTmpfs(where string) error {
	if err := unix.Mount("tmpfs", where, "tmpfs", 0, "size=1m"); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(where, "hello"), []byte("hello from the mount\n"), 0o644)
}

func serveTmpfs(s *server, _ *observer.Event, answer func(observer.Verdict)) {
	if err := mountTmpfs(s.where); err != nil {
		s.t.Errorf("mount tmpfs: %v", err)
		answer(observer.Deny)
		return
	}
	answer(observer.Allow)
}

// access runs an accessor in a process group of its own (the test's own
// group is the autofs daemon, which never triggers the mount). The
// context bounds a hang: it is a failure, not a timing.
func access(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v hung: the autofs request was never answered", name, args)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %v: %w: %s", name, args, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fsMagic(t testing.TB, path string) int64 {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return sfs.Type
}

func TestMountTriggersOnFirstAccess(t *testing.T) {
	s := newServer(t, Options{}, serveTmpfs)
	if got := fsMagic(t, s.where); got != SuperMagic {
		t.Fatalf("%s: magic %#x, want autofs", s.where, got)
	}
	out, err := access(t, "ls", s.where)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "hello" {
		t.Fatalf("ls %s = %q, want the mounted file", s.where, out)
	}
	if got := fsMagic(t, s.where); got != unix.TMPFS_MAGIC {
		t.Errorf("after access: magic %#x, want tmpfs", got)
	}
	// Mounted: later accesses go straight through.
	if out, err := access(t, "cat", filepath.Join(s.where, "hello")); err != nil || !strings.Contains(out, "hello from") {
		t.Errorf("cat = %q, %v", out, err)
	}
	if n := s.missing.Load(); n != 1 {
		t.Errorf("%d missing requests, want 1", n)
	}
	if p := s.mnt.Pending(); p != 0 {
		t.Errorf("%d tokens pending after the answers", p)
	}
}

func TestMountConcurrentAccessorsAllWait(t *testing.T) {
	// The answer comes late, so that every accessor is asleep in the
	// kernel by then.
	var pids sync.Map
	s := newServer(t, Options{}, func(s *server, ev *observer.Event, answer func(observer.Verdict)) {
		pids.Store(ev.Attr("pid"), true)
		s.loop.AfterFunc(300*time.Millisecond, func() { serveTmpfs(s, ev, answer) })
	})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := access(t, "cat", filepath.Join(s.where, "hello"))
			if err == nil && !strings.Contains(out, "hello from") {
				err = fmt.Errorf("cat read %q", out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if m := s.missing.Load(); m < 1 {
		t.Errorf("no missing request for %d accessors", n)
	}
	t.Logf("%d accessors, %d requests", n, s.missing.Load())
}

func TestMountIdleExpiryAndRemount(t *testing.T) {
	s := newServer(t, Options{IdleTimeout: time.Second}, serveTmpfs)
	if _, err := access(t, "ls", s.where); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle mount to expire", func() bool { return fsMagic(t, s.where) == SuperMagic })
	if s.expired.Load() < 1 {
		t.Fatal("unmounted without an expire request")
	}
	out, err := access(t, "ls", s.where)
	if err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("after expiry: ls = %q, %v", out, err)
	}
	if n := s.missing.Load(); n != 2 {
		t.Errorf("%d missing requests, want 2 (first access and after expiry)", n)
	}
}

func TestMountBusyIsNotExpired(t *testing.T) {
	s := newServer(t, Options{IdleTimeout: time.Second}, serveTmpfs)
	if _, err := access(t, "ls", s.where); err != nil {
		t.Fatal(err)
	}
	// A process with its working directory inside keeps the mount busy.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	busy := exec.CommandContext(ctx, "sleep", "60")
	busy.Dir = s.where
	busy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer busy.Wait()
	// Several expire rounds (a quarter of the timeout each) pass.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if fsMagic(t, s.where) != unix.TMPFS_MAGIC {
			t.Fatal("a busy mount was expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	busy.Wait()
	waitFor(t, "expiry once idle", func() bool { return fsMagic(t, s.where) == SuperMagic })
}

func TestMountDeniedAccessFails(t *testing.T) {
	s := newServer(t, Options{}, func(_ *server, _ *observer.Event, answer func(observer.Verdict)) {
		answer(observer.Deny)
	})
	_, err := access(t, "ls", s.where)
	if err == nil {
		t.Fatal("ls succeeded on a failed mount")
	}
	if !strings.Contains(strings.ToLower(err.Error()), unix.EHOSTDOWN.Error()) {
		t.Errorf("error %v, want %q", err, unix.EHOSTDOWN.Error())
	}
	if s.mnt.Failed() != 1 {
		t.Errorf("failed = %d, want 1", s.mnt.Failed())
	}
	// The trigger stays: the next access asks again.
	if _, err := access(t, "ls", s.where); err == nil {
		t.Error("second access succeeded")
	}
	if n := s.missing.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestMountRequestDeadlineFailsAccessor(t *testing.T) {
	s := newServer(t, Options{RequestDeadline: 300 * time.Millisecond}, func(*server, *observer.Event, func(observer.Verdict)) {
		// Never answers: the hold's deadline must.
	})
	if _, err := access(t, "ls", s.where); err == nil {
		t.Fatal("ls succeeded without a mount")
	}
	if n := s.missing.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if s.mnt.Pending() != 0 {
		t.Errorf("%d tokens still pending", s.mnt.Pending())
	}
}

func TestMountCloseAnswersPendingRequests(t *testing.T) {
	s := newServer(t, Options{}, func(*server, *observer.Event, func(observer.Verdict)) {})
	result := make(chan error, 1)
	go func() {
		_, err := access(t, "ls", s.where)
		result <- err
	}()
	waitFor(t, "the request to be pending", func() bool { return s.mnt.Pending() == 1 })
	if err := s.mnt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err == nil {
		t.Fatal("accessor succeeded although nothing was mounted")
	}
	// Catatonic: a new accessor sees the empty trigger directory at once
	// instead of waiting for a daemon that is gone.
	if out, err := access(t, "ls", s.where); err != nil || out != "" {
		t.Errorf("access after close = %q, %v; want an empty directory", out, err)
	}
	if n := s.missing.Load(); n != 1 {
		t.Errorf("%d requests, want 1 (none after close)", n)
	}
	if err := s.mnt.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got := fsMagic(t, s.where); got == SuperMagic {
		t.Error("autofs still mounted after Unmount")
	}
}

func TestControlMountPointQueries(t *testing.T) {
	s := newServer(t, Options{}, serveTmpfs)
	info, err := s.mnt.ctl.IsMountPoint(s.where)
	if err != nil {
		t.Fatal(err)
	}
	if !info.MountPoint || info.Magic != SuperMagic {
		t.Errorf("is-mount-point before access: %+v", info)
	}
	if ok, err := s.mnt.ctl.AskUmount(s.mnt.ioctlFD); err != nil || !ok {
		t.Errorf("ask-umount with nothing mounted = %v, %v", ok, err)
	}
	if _, err := access(t, "ls", s.where); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.mnt.ctl.AskUmount(s.mnt.ioctlFD); err != nil || ok {
		t.Errorf("ask-umount with a tmpfs on top = %v, %v", ok, err)
	}
	if err := UnmountTrigger(s.where); err == nil {
		t.Error("UnmountTrigger took away a covered autofs mount")
	}
}

func TestStartRefusesBadMountPoints(t *testing.T) {
	skipWithoutAutofs(t)
	loop := observer.New(observer.Options{})
	src := loop.NewSource("autofs", 0)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Start(Options{Where: file, Source: src}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as mount point: %v", err)
	}
	if _, err := Start(Options{Where: "relative/dir", Source: src}); err == nil {
		t.Error("a relative mount point was accepted")
	}
	s := newServer(t, Options{}, serveTmpfs)
	if _, err := Start(Options{Where: s.where, Source: src}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("a second autofs on the same place: %v", err)
	}
}

// fakeKernel records answers.
type fakeKernel struct {
	mu    sync.Mutex
	ready []uint64
	fail  map[uint64]unix.Errno
}

func (f *fakeKernel) Ready(_ int, token uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = append(f.ready, token)
	return nil
}

func (f *fakeKernel) Fail(_ int, token uint64, errno unix.Errno) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[uint64]unix.Errno{}
	}
	f.fail[token] = errno
	return nil
}

func TestBadPacketsAreAnsweredFail(t *testing.T) {
	loop := observer.New(observer.Options{})
	src := loop.NewSource("autofs", 0)
	k := &fakeKernel{}
	m := &Mount{where: "/x", kernel: k, src: src, logf: t.Logf, pending: map[uint64]PacketType{}}
	m.handle(Packet{Version: 4, Type: TypeMissingDirect, Token: 11}.Encode())
	m.handle(Packet{Version: 5, Type: 99, Token: 12}.Encode())
	m.handle(Packet{Version: 5, Type: TypeMissingIndirect, Token: 13}.Encode())
	m.handle([]byte{1, 2, 3})
	for _, tok := range []uint64{11, 12, 13} {
		if _, ok := k.fail[tok]; !ok {
			t.Errorf("token %d was not answered FAIL", tok)
		}
	}
	if len(k.ready) != 0 {
		t.Errorf("bad packets answered READY: %v", k.ready)
	}
	for _, si := range loop.Sources() {
		if si.Name == "autofs" && si.Posted != 0 {
			t.Errorf("bad packets were posted: %+v", si)
		}
	}
	// A good one is posted, held, and answered once.
	m.handle(Packet{Version: 5, Type: TypeMissingDirect, Token: 14}.Encode())
	if m.Pending() != 1 {
		t.Fatalf("pending = %d", m.Pending())
	}
	m.answer(14, observer.Allow)
	m.answer(14, observer.Deny)
	if len(k.ready) != 1 || k.ready[0] != 14 {
		t.Errorf("ready = %v", k.ready)
	}
	if _, failed := k.fail[14]; failed {
		t.Error("token 14 answered twice")
	}
}
