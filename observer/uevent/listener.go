package uevent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"vigil/observer"
)

// GroupKernel is the netlink multicast group the kernel sends uevents to;
// GroupUdev is the one udevd re-broadcasts processed events on.
const (
	GroupKernel = 1
	GroupUdev   = 2
)

// ListenOptions configure a Listener. The zero value listens to the kernel.
type ListenOptions struct {
	// SourceName is the loop source's name and the events' Source;
	// default "uevent".
	SourceName string
	// QueueLimit bounds the source's queue in the loop; default 4096.
	QueueLimit int
	// ReceiveBuffer is the socket's receive buffer in bytes; default
	// 128 MiB, as udevd asks for, so a burst (coldplug, a hub of disks)
	// does not overflow. As root it is forced past rmem_max.
	ReceiveBuffer int
	// Group is the multicast group; default GroupKernel.
	Group uint32
	// Logf receives complaints (malformed messages); nil discards them.
	Logf func(format string, args ...any)
}

// Stats counts what a Listener saw.
type Stats struct {
	// Received counts messages parsed and handed to the loop.
	Received uint64
	// Malformed counts messages that did not parse (or were truncated).
	Malformed uint64
	// Foreign counts messages from a sender other than the kernel on the
	// kernel's group (any process with CAP_NET_ADMIN could send them).
	Foreign uint64
	// Overflows counts ENOBUFS: the kernel dropped events for us.
	Overflows uint64
	// Dropped counts events the loop's full queue refused.
	Dropped uint64
	// Resyncs counts "resync" events posted.
	Resyncs uint64
}

// Listener receives uevents from the kernel and posts them to a loop as
// events of source "uevent" (SourceName) and kind Action, with every key as
// an attribute and the *Uevent as Payload.
//
// When events were lost, either because the socket overflowed (ENOBUFS) or
// because the loop's queue was full, it posts one event of kind "resync"
// (attribute "reason": "overflow", "queue-full", or "restart" after the
// receiving goroutine was run again following a panic) as soon as the queue
// takes it: consumers must then re-walk /sys (Coldplug) to learn what they
// missed.
type Listener struct {
	file   *os.File
	source *observer.Source
	opts   ListenOptions
	// ReceiveBufferSize is the buffer size the kernel granted.
	receiveBuffer int

	received, malformed, foreign, overflows, dropped, resyncs atomic.Uint64

	closeOnce sync.Once
	done      chan struct{}
	// reader runs run, again after a panic (observer.Keep); runs counts
	// its runs (owned by the reader goroutine).
	reader *observer.Keeper
	runs   int
}

// Listen opens the netlink socket, binds it and starts receiving.
func Listen(loop *observer.Loop, opts ListenOptions) (*Listener, error) {
	if opts.SourceName == "" {
		opts.SourceName = "uevent"
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = 4096
	}
	if opts.ReceiveBuffer <= 0 {
		opts.ReceiveBuffer = 128 << 20
	}
	if opts.Group == 0 {
		opts.Group = GroupKernel
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	// SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the buffer is capped
	// at net.core.rmem_max.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.ReceiveBuffer); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, opts.ReceiveBuffer); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("uevent socket receive buffer: %w", err)
		}
	}
	// Ask the kernel to tell the kernel's messages (pid 0) from others'.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent socket credentials: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: opts.Group}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket to group %d: %w", opts.Group, err)
	}
	granted, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	l := &Listener{
		// A non-blocking fd in an os.File is served by the runtime's
		// poller, so Close wakes the receiving goroutine.
		file:          os.NewFile(uintptr(fd), "uevent-netlink"),
		source:        loop.NewSource(opts.SourceName, opts.QueueLimit),
		opts:          opts,
		receiveBuffer: granted,
		done:          make(chan struct{}),
	}
	l.reader = l.source.Keep("uevent listener", observer.KeepOptions{Logf: l.opts.Logf}, l.run)
	go func() { <-l.reader.Done(); close(l.done) }()
	return l, nil
}

// ReceiveBufferSize is the receive buffer the kernel granted, in bytes
// (the kernel reports double the requested size, for its bookkeeping).
func (l *Listener) ReceiveBufferSize() int { return l.receiveBuffer }

// Stats returns the counters so far.
func (l *Listener) Stats() Stats {
	return Stats{
		Received:  l.received.Load(),
		Malformed: l.malformed.Load(),
		Foreign:   l.foreign.Load(),
		Overflows: l.overflows.Load(),
		Dropped:   l.dropped.Load(),
		Resyncs:   l.resyncs.Load(),
	}
}

// Close stops receiving and closes the socket; it waits for the receiving
// goroutine to end. Safe to call more than once.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.reader.Stop()
		err = l.file.Close()
		<-l.done
	})
	return err
}

func (l *Listener) logf(format string, args ...any) {
	if l.opts.Logf != nil {
		l.opts.Logf(format, args...)
	}
}

// run receives until the socket is closed (nil); a panic ends it too, and
// observer.Keep runs it again: that run starts with a resync, since what
// the failed one had read is lost.
func (l *Listener) run() error {
	raw, err := l.file.SyscallConn()
	if err != nil {
		return nil // closed
	}
	buf := make([]byte, MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	var pendingResync string
	if l.runs++; l.runs > 1 {
		pendingResync = "restart"
		l.postResync(&pendingResync)
	}
	for {
		var n, oobn int
		var from unix.Sockaddr
		var recvErr error
		err := raw.Read(func(fd uintptr) bool {
			n, oobn, _, from, recvErr = unix.Recvmsg(int(fd), buf, oob, 0)
			return recvErr != unix.EAGAIN
		})
		if err != nil {
			return nil // closed
		}
		switch {
		case errors.Is(recvErr, unix.ENOBUFS):
			l.overflows.Add(1)
			pendingResync = "overflow"
			l.postResync(&pendingResync)
			continue
		case errors.Is(recvErr, unix.EINTR):
			continue
		case recvErr != nil:
			l.logf("uevent: receive: %v", recvErr)
			continue
		}
		if !trustedSender(l.opts.Group, from, oob[:oobn]) {
			l.foreign.Add(1)
			continue
		}
		if n > MaxMessageSize {
			l.malformed.Add(1)
			l.logf("uevent: message of more than %d bytes ignored", MaxMessageSize)
			continue
		}
		ev, err := Parse(buf[:n])
		if err != nil {
			l.malformed.Add(1)
			l.logf("uevent: %v", err)
			continue
		}
		l.received.Add(1)
		if pendingResync != "" {
			l.postResync(&pendingResync)
		}
		if !l.source.Post(Event(ev)) {
			l.dropped.Add(1)
			pendingResync = "queue-full"
		}
	}
}

// postResync posts the resync event and clears the reason once the loop
// took it.
func (l *Listener) postResync(reason *string) {
	ok := l.source.Post(observer.Event{Kind: "resync", Attrs: map[string]string{
		"reason":    *reason,
		"overflows": strconv.FormatUint(l.overflows.Load(), 10),
		"dropped":   strconv.FormatUint(l.dropped.Load(), 10),
	}})
	if ok {
		l.resyncs.Add(1)
		*reason = ""
	}
}

// trustedSender accepts, as libudev does, messages sent by root, and on
// the kernel's group only those from the kernel itself (netlink port 0).
func trustedSender(group uint32, from unix.Sockaddr, oob []byte) bool {
	nl, ok := from.(*unix.SockaddrNetlink)
	if !ok || group == GroupKernel && nl.Pid != 0 {
		return false
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return true
	}
	for i := range msgs {
		if cred, err := unix.ParseUnixCredentials(&msgs[i]); err == nil && cred.Uid != 0 {
			return false
		}
	}
	return true
}

// Event turns a uevent into the loop's event: source left for the loop's
// Source to fill, kind the action, every key an attribute, the uevent
// itself the Payload. Attrs is the uevent's Env map itself (events are
// read-only for every guest), which saves a copy per event.
func Event(u *Uevent) observer.Event {
	return observer.Event{Kind: u.Action, Attrs: u.Env, Payload: u}
}
