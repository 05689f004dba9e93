package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// console collects the guest's serial output as lines (carriage returns
// removed) and lets goroutines wait for a line to appear. It keeps every
// line: a test boot's console is small, and the whole log is wanted for
// error reports.
type console struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced on every new line and at EOF
	closed  bool
}

func newConsole() *console { return &console{changed: make(chan struct{})} }

// Write takes raw serial bytes.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, strings.TrimRight(string(data[:i]), "\r"))
		data = data[i+1:]
		added = true
	}
	c.partial = append([]byte(nil), data...)
	if added {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	return len(p), nil
}

// close marks the end of output (QEMU exited); the partial line becomes a
// line.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.partial) > 0 {
		c.lines = append(c.lines, strings.TrimRight(string(c.partial), "\r"))
		c.partial = nil
	}
	c.closed = true
	close(c.changed)
}

// snapshot returns lines from index from on, whether output ended, and a
// channel that is closed when more arrives.
func (c *console) snapshot(from int) ([]string, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if from > len(c.lines) {
		from = len(c.lines)
	}
	return append([]string(nil), c.lines[from:]...), c.closed, c.changed
}

// waitLine waits for the first line at or after index from for which match
// is true, and returns it with its index.
func (c *console) waitLine(ctx context.Context, from int, match func(string) bool) (string, int, error) {
	for {
		lines, closed, changed := c.snapshot(from)
		for i, l := range lines {
			if match(l) {
				return l, from + i, nil
			}
		}
		from += len(lines)
		if closed {
			return "", from, io.EOF
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", from, ctx.Err()
		}
	}
}

// text is the whole console output so far.
func (c *console) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.Join(c.lines, "\n")
	if len(c.lines) > 0 {
		s += "\n"
	}
	return s + string(c.partial)
}

// tail returns the last n lines, partial line included.
func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines
	if len(c.partial) > 0 {
		lines = append(append([]string(nil), lines...), string(c.partial))
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// indent prefixes each line of s for inclusion in an error message.
func indent(s string) string {
	if s == "" {
		return "    (no console output)"
	}
	return "    | " + strings.ReplaceAll(s, "\n", "\n    | ")
}

// withTail appends the console tail to a one-line reason.
func withTail(reason, tail string) string {
	return fmt.Sprintf("%s\nlast console lines:\n%s", reason, indent(tail))
}
