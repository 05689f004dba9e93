package observer

import (
	"fmt"
	"os"
	"runtime/debug"
)

// Guard runs fn and turns a panic into a log line (with its stack) instead
// of the end of the process. Sources run their readers in goroutines of
// their own, outside the loop's recovery, and in PID 1 an unrecovered panic
// in any goroutine panics the kernel: every source goroutine runs under
// Guard. The source stops; the rest of the machine goes on. A nil logf
// writes to stderr (the console, for PID 1).
func Guard(what string, logf func(format string, args ...any), fn func()) {
	defer func() {
		if p := recover(); p != nil {
			if logf == nil {
				logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
			}
			logf("%s stopped by a panic: %v\n%s", what, p, debug.Stack())
		}
	}()
	fn()
}
