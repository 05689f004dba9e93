package units

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// keepSignalsOffThisThread locks the calling goroutine to its thread and
// blocks every signal on that thread. Call it first thing in a goroutine
// whose system calls may sleep uninterruptibly (a removal that reaches a
// FUSE or NFS server that never answers), and let the goroutine end
// locked: the runtime then discards the thread with its mask.
//
// Why: the kernel sends a child's SIGCHLD to the thread that forked it and
// delivers a process-wide signal to any thread that does not block it. A
// thread asleep in the D state takes the signal and handles it only once
// its system call returns, which may be never, so os/signal, and with it
// the reaper (observer/process), would not hear of the exit: the unit's
// job hangs and the child stays a zombie. Go runs goroutines on any
// thread, so the thread that forked a unit's process may well be the one
// that later blocks in a removal. With every signal blocked here, the
// kernel gives each one to another thread.
func keepSignalsOffThisThread() error {
	runtime.LockOSThread()
	var all unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i] // every bit, whatever the word size
	}
	return unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil)
}

// callWithSignalsOff runs call on a thread of its own with every signal
// blocked (keepSignalsOffThisThread), for a single system call that may
// sleep uninterruptibly: mount(2) of an NFS export whose server is gone,
// swapoff of a device that stopped answering. The thread is discarded
// afterwards, so the caller's thread keeps its mask.
func callWithSignalsOff(call func() error) error {
	result := make(chan error, 1)
	go func() {
		if err := keepSignalsOffThisThread(); err != nil {
			result <- fmt.Errorf("block signals on the calling thread: %w", err)
			return
		}
		result <- call()
	}()
	return <-result
}
