package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// trustEntry is one line of a trust list: a file with its size and digest.
type trustEntry struct {
	size int64
	sum  string
}

// maxTrustFiles bounds how many files one trust glob may name.
const maxTrustFiles = 256

// loadTrust reads every trust list the glob names. A trust list is in the
// spirit of fapolicyd's trust database: one file a line, "path size sha256"
// (blank lines and # comments are skipped). Errors name file:line.
func loadTrust(glob string) (map[string]trustEntry, error) {
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", glob, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%q names no file", glob)
	}
	if len(files) > maxTrustFiles {
		return nil, fmt.Errorf("%q names %d files, more than %d", glob, len(files), maxTrustFiles)
	}
	out := map[string]trustEntry{}
	for _, f := range files {
		src, err := readBounded(f)
		if err != nil {
			return nil, err
		}
		if err := ParseTrustList(f, src, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseTrustList adds the entries of one trust list to into; name is used
// in errors ("trust.d/base.list:4: ...").
func ParseTrustList(name string, src []byte, into map[string]trustEntry) error {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return fmt.Errorf("%s:%d: expected \"path size sha256\", got %d fields", name, line, len(f))
		}
		if !strings.HasPrefix(f[0], "/") {
			return fmt.Errorf("%s:%d: path %q is not absolute", name, line, f[0])
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%s:%d: size %q is not a number of bytes", name, line, f[1])
		}
		sum := strings.ToLower(f[2])
		if !isSHA256(sum) {
			return fmt.Errorf("%s:%d: sha256 %q is not 64 hexadecimal digits", name, line, f[2])
		}
		into[filepath.Clean(f[0])] = trustEntry{size: size, sum: sum}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return nil
}

// fileHash is a file's digest as the auditor saw it.
type fileHash struct {
	sum  string
	size int64
	err  error
}

// hashKey identifies one version of a file: a rewritten file changes its
// ctime, so a cached digest is never reused for new content.
type hashKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// maxHashCache bounds the digest cache: each of its two generations holds
// at most this many digests (see hashCache).
const maxHashCache = 4096

// hashCache remembers digests by file identity. The fanotify reader
// (Inline), the inline worker and the hash workers use it at once, hence
// the lock. It is bounded by two generations: lookups find a digest in
// either and move it to the current one; when the current one is full it
// becomes the old one and the previous old one is dropped. Digests in use
// (a service's binary exec'd again and again) thereby survive, unlike a
// cache that starts over when full, at the cost of at most twice
// maxHashCache entries and no per-entry bookkeeping.
type hashCache struct {
	mu       sync.Mutex
	cur, old map[hashKey]string

	hits, misses atomic.Uint64
}

// keyOf is the identity of the file version st describes.
func keyOf(st *unix.Stat_t) hashKey {
	return hashKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: time.Unix(st.Mtim.Unix()).UnixNano(), ctime: time.Unix(st.Ctim.Unix()).UnixNano()}
}

func (c *hashCache) lookup(key hashKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sum, ok := c.cur[key]; ok {
		return sum, true
	}
	sum, ok := c.old[key]
	if ok {
		c.storeLocked(key, sum)
	}
	return sum, ok
}

func (c *hashCache) store(key hashKey, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storeLocked(key, sum)
}

func (c *hashCache) storeLocked(key hashKey, sum string) {
	if c.cur == nil || len(c.cur) >= maxHashCache {
		c.old, c.cur = c.cur, make(map[hashKey]string, 64)
	}
	c.cur[key] = sum
}

// len is how many digests the cache holds.
func (c *hashCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// cached gives the digest of the file at path if the cache has it for the
// file as it is now. It only stats the path (no open, so no permission
// event either): cheap enough for the fanotify reader.
func (c *hashCache) cached(file string) (fileHash, bool) {
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileHash{}, false
	}
	sum, ok := c.lookup(keyOf(&st))
	if !ok {
		return fileHash{}, false
	}
	c.hits.Add(1)
	return fileHash{sum: sum, size: st.Size}, true
}

// hash reads the digest of the regular file at path, from the cache when
// the file did not change since (same device, inode, size, mtime and
// ctime: a rewritten file changes its ctime). The auditor's own opens
// never reach it as events (the fanotify source exempts Vigil's PID), but
// only as long as the fanotify reader is free to answer them: hash must
// not run on the reader for a file a miss may open (see Auditor.Inline).
func (c *hashCache) hash(file string) fileHash {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return fileHash{err: err}
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileHash{err: fmt.Errorf("stat %s: %w", file, err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileHash{err: fmt.Errorf("%s: not a regular file", file)}
	}
	key := keyOf(&st)
	if sum, ok := c.lookup(key); ok {
		c.hits.Add(1)
		return fileHash{sum: sum, size: st.Size}
	}
	c.misses.Add(1)
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fileHash{err: fmt.Errorf("read %s: %w", file, err)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	c.store(key, sum)
	return fileHash{sum: sum, size: n}
}
