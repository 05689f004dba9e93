package fanotify

import (
	"testing"
	"time"
)

// TestIfUnmarkedDoesNotWaitForARefresh: while a refresh holds the marks'
// lock (resolving paths, which may sleep in a file system that stopped
// answering), IfUnmarked of a group with marks answers no at once instead
// of waiting: the manager calls it before forking a unit's process.
func TestIfUnmarkedDoesNotWaitForARefresh(t *testing.T) {
	h := newSource(t, Options{})
	h.mark(tempFile(t, "x"), Open)
	h.src.mu.Lock() // a refresh stuck in a stat
	answered := make(chan bool, 1)
	go func() { answered <- h.src.IfUnmarked(func() {}) }()
	select {
	case ran := <-answered:
		h.src.mu.Unlock()
		if ran {
			t.Errorf("IfUnmarked ran its function while a mark is placed")
		}
	case <-time.After(10 * time.Second):
		h.src.mu.Unlock()
		<-answered
		t.Fatal("IfUnmarked waited for the lock a refresh holds")
	}
}
