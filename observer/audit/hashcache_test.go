package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/observer"
)

func sha256Of(t testing.TB, b []byte) string {
	t.Helper()
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestHashCacheReusesAndRehashes: a file digested once is answered from
// the cache (shown by planting a different digest under its key); a file
// rewritten with new content of the same size is digested again.
func TestHashCacheReusesAndRehashes(t *testing.T) {
	var c hashCache
	path := filepath.Join(t.TempDir(), "prog")
	old := []byte("version one\n")
	if err := os.WriteFile(path, old, 0o755); err != nil {
		t.Fatal(err)
	}
	h := c.hash(path)
	if h.err != nil || h.sum != sha256Of(t, old) || h.size != int64(len(old)) {
		t.Fatalf("first digest: %+v", h)
	}
	// Plant a digest under the file's key: a cache that is really reused
	// hands it back instead of reading the file.
	c.mu.Lock()
	for k := range c.cur {
		c.cur[k] = "planted"
	}
	c.mu.Unlock()
	if h := c.hash(path); h.sum != "planted" {
		t.Fatalf("second digest %q: the cache was not used", h.sum)
	}
	if h, ok := c.cached(path); !ok || h.sum != "planted" {
		t.Fatalf("cached(): %+v %v", h, ok)
	}
	if c.misses.Load() != 1 || c.hits.Load() != 2 {
		t.Errorf("hits %d misses %d, want 2 and 1", c.hits.Load(), c.misses.Load())
	}
	// Same size, new content: the ctime moves, so the key does.
	time.Sleep(10 * time.Millisecond) // a coarse timestamp clock must tick
	updated := []byte("version two\n")
	if err := os.WriteFile(path, updated, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.cached(path); ok {
		t.Fatal("cached() answered for a rewritten file")
	}
	if h := c.hash(path); h.err != nil || h.sum != sha256Of(t, updated) {
		t.Fatalf("after the rewrite: %+v, want the new digest", h)
	}
	if c.misses.Load() != 2 {
		t.Errorf("misses %d, want 2", c.misses.Load())
	}
}

// TestHashCacheBoundedKeepsWhatIsInUse: past its bound the cache drops
// the oldest generation, but a digest looked up meanwhile survives.
func TestHashCacheBoundedKeepsWhatIsInUse(t *testing.T) {
	var c hashCache
	hot := hashKey{ino: 1}
	c.store(hot, "hot")
	for i := 0; i < 3*maxHashCache; i++ {
		c.store(hashKey{ino: uint64(i) + 100}, "cold")
		if i%(maxHashCache/2) == 0 {
			if _, ok := c.lookup(hot); !ok {
				t.Fatalf("the digest in use was dropped after %d stores", i)
			}
		}
	}
	if n := c.len(); n > 2*maxHashCache {
		t.Errorf("cache holds %d digests, bound is %d", n, 2*maxHashCache)
	}
	if _, ok := c.lookup(hashKey{ino: 100}); ok {
		t.Error("the oldest unused digest is still there")
	}
}

// newHashPolicyAuditor makes an auditor (no loop needed for inline
// decisions) whose policy allows exec of prog only with the given digest
// and denies the rest of dir.
func newHashPolicyAuditor(t testing.TB, dir, prog, sum string) *Auditor {
	t.Helper()
	cfg := filepath.Join(dir, "audit.toml")
	policy := `
mode = "enforce"
log = "` + filepath.Join(dir, "audit.log") + `"
[[rule]]
name = "known-binary"
access = ["exec"]
path = ["` + prog + `"]
sha256 = ["` + sum + `"]
action = "allow"
[[rule]]
name = "nothing-else"
access = ["exec"]
path = ["` + filepath.Dir(prog) + `/**"]
action = "deny"
`
	if err := os.WriteFile(cfg, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{ConfigPath: cfg, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

func execEvent(path string) *observer.Event {
	return &observer.Event{Source: "fanotify", Kind: "exec", Attrs: map[string]string{
		"path": path, "pid": "4242", "uid": "0", "exe": "/sbin/vigil", "comm": "vigil", "cgroup": "/system.slice/x.service", "mark": path}}
}

// TestInlineLaterDigestsOffTheReader: a miss is handed to the inline
// worker (the call returns at once even while the digest is stuck) and
// answered later; the next decision on the unchanged file comes from the
// cache without the worker; a changed file is digested again.
func TestInlineLaterDigestsOffTheReader(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "bin", "prog")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	content := []byte("#!/bin/true\nknown\n")
	if err := os.WriteFile(prog, content, 0o755); err != nil {
		t.Fatal(err)
	}
	a := newHashPolicyAuditor(t, dir, prog, sha256Of(t, content))
	unblock := make(chan struct{})
	stuck := make(chan string, 4)
	real := a.hashFile
	a.hashFile = func(p string) fileHash {
		stuck <- p
		<-unblock
		return real(p)
	}
	answers := make(chan observer.Verdict, 4)
	answer := func(v observer.Verdict) { answers <- v }

	if _, decided := a.InlineLater(execEvent(prog), answer); decided {
		t.Fatal("a digest not yet cached was decided on the reader")
	}
	<-stuck // the worker digests while the reader is free
	select {
	case v := <-answers:
		t.Fatalf("answered %s before the digest was done", v)
	default:
	}
	close(unblock)
	select {
	case v := <-answers:
		if v != observer.Allow {
			t.Fatalf("known binary: %s", v)
		}
	case <-time.After(waitLimit):
		t.Fatal("the deferred decision never came")
	}
	// Cached now: decided on the spot, without the worker.
	v, decided := a.InlineLater(execEvent(prog), answer)
	if !decided || v != observer.Allow {
		t.Fatalf("cached: %s decided=%v", v, decided)
	}
	select {
	case p := <-stuck:
		t.Fatalf("the worker digested %s again", p)
	default:
	}
	// A rewritten binary is digested again and no longer known.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(prog, []byte("#!/bin/true\nEVIL!\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, decided := a.InlineLater(execEvent(prog), answer); decided {
		t.Fatal("a changed file was decided from the cache")
	}
	select {
	case v := <-answers:
		if v != observer.Deny {
			t.Fatalf("changed binary: %s, want deny", v)
		}
	case <-time.After(waitLimit):
		t.Fatal("the deferred decision on the changed file never came")
	}
	if c := a.Counters(); c.HashMisses != 2 || c.HashHits != 1 || c.Inline != 3 || c.Denied != 1 {
		t.Errorf("counters %+v: want 2 misses, 1 hit, 3 inline, 1 denied", c)
	}
}

// TestInlineLaterBusyTakesTheTimeoutVerdict: with the inline worker's
// queue full the reader does not wait: the timeout-verdict answers.
func TestInlineLaterBusyTakesTheTimeoutVerdict(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "bin", "prog")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	os.WriteFile(prog, []byte("x"), 0o755)
	a := newHashPolicyAuditor(t, dir, prog, strings.Repeat("0", 64))
	unblock := make(chan struct{})
	defer close(unblock)
	a.hashFile = func(string) fileHash { <-unblock; return fileHash{err: os.ErrDeadlineExceeded} }
	noop := func(observer.Verdict) {}
	busy := false
	for i := 0; i < hashQueue+2; i++ {
		if v, decided := a.InlineLater(execEvent(prog), noop); decided {
			if v != a.Policy().TimeoutVerdict {
				t.Fatalf("busy verdict %s, want the timeout-verdict %s", v, a.Policy().TimeoutVerdict)
			}
			busy = true
			break
		}
	}
	if !busy || a.Counters().Busy != 1 {
		t.Fatalf("the queue never filled: busy %v, counters %+v", busy, a.Counters())
	}
}

// BenchmarkInlineDecision: one inline decision on a rule with a digest,
// for an 8 MiB binary. "cached" is the common case (a service started
// again); "uncached-on-reader" is what Inline costs the fanotify reader on
// a miss; "uncached-reader-share" is what InlineLater costs it (the digest
// runs on the inline worker, outside the timed part).
func BenchmarkInlineDecision(b *testing.B) {
	dir := b.TempDir()
	prog := filepath.Join(dir, "bin", "prog")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	content := make([]byte, 8<<20)
	rand.Read(content)
	if err := os.WriteFile(prog, content, 0o755); err != nil {
		b.Fatal(err)
	}
	a := newHashPolicyAuditor(b, dir, prog, sha256Of(b, content))
	ev := execEvent(prog)
	reset := func() {
		a.hashes.mu.Lock()
		a.hashes.cur, a.hashes.old = nil, nil
		a.hashes.mu.Unlock()
	}
	b.Run("cached", func(b *testing.B) {
		a.Inline(ev)
		for b.Loop() {
			if a.Inline(ev) != observer.Allow {
				b.Fatal("denied")
			}
		}
	})
	b.Run("uncached-on-reader", func(b *testing.B) {
		b.SetBytes(int64(len(content)))
		for b.Loop() {
			reset()
			if a.Inline(ev) != observer.Allow {
				b.Fatal("denied")
			}
		}
	})
	b.Run("uncached-reader-share", func(b *testing.B) {
		done := make(chan observer.Verdict, 1)
		answer := func(v observer.Verdict) { done <- v }
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			reset()
			b.StartTimer()
			if _, decided := a.InlineLater(ev, answer); decided {
				b.Fatal("decided on the reader")
			}
			b.StopTimer()
			if <-done != observer.Allow {
				b.Fatal("denied")
			}
			b.StartTimer()
		}
	})
}

// TestInlineDigestsOnTheSpot: Inline (without the worker) decides with
// the digest it computes or finds in the cache.
func TestInlineDigestsOnTheSpot(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "bin", "prog")
	os.MkdirAll(filepath.Dir(prog), 0o755)
	content := []byte("known\n")
	os.WriteFile(prog, content, 0o755)
	a := newHashPolicyAuditor(t, dir, prog, sha256Of(t, content))
	for i := 0; i < 2; i++ {
		if v := a.Inline(execEvent(prog)); v != observer.Allow {
			t.Fatalf("run %d: %s", i, v)
		}
	}
	if c := a.Counters(); c.HashMisses != 1 || c.HashHits != 1 {
		t.Errorf("counters %+v: want 1 miss then 1 hit", c)
	}
	if v := a.Inline(execEvent(filepath.Join(dir, "bin", "other"))); v != observer.Deny {
		t.Errorf("other program: %s, want deny", v)
	}
}
