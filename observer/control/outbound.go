package control

import "sync"

// outbound is one connection's queue of frames waiting to be written. The
// loop and the connection's reader add to it without ever blocking; the
// connection's writer drains it. Progress frames are bounded (a slow client
// loses them, counted); final frames are never dropped while the connection
// lives, and the reader stops taking new calls while too many finals wait,
// so the queue stays bounded without the loop having to wait.
type outbound struct {
	progressLimit int

	mu        sync.Mutex
	frames    []queuedFrame
	progress  int // progress frames in frames
	finals    int // final frames in frames
	closed    bool
	wake      chan struct{} // writer: something to write or closed
	drained   *sync.Cond    // reader: finals went down or closed
	inFlight  uint64        // id of the call being answered, if busyCall
	busyCall  bool
	callDrops uint64 // progress frames dropped for the call in flight
}

type queuedFrame struct {
	data  []byte
	final bool
}

func newOutbound(progressLimit int) *outbound {
	o := &outbound{progressLimit: progressLimit, wake: make(chan struct{}, 1)}
	o.drained = sync.NewCond(&o.mu)
	return o
}

func (o *outbound) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// addProgress queues a progress frame; false when it was dropped.
func (o *outbound) addProgress(data []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	if o.progress >= o.progressLimit {
		o.callDrops++
		return false
	}
	o.frames = append(o.frames, queuedFrame{data: data})
	o.progress++
	o.poke()
	return true
}

// addFinal queues a final frame; false when the connection is gone.
func (o *outbound) addFinal(data []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.frames = append(o.frames, queuedFrame{data: data, final: true})
	o.finals++
	o.poke()
	return true
}

// take hands the writer everything queued.
func (o *outbound) take() (frames []queuedFrame, closed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	frames = o.frames
	o.frames = nil
	return frames, o.closed
}

// written tells the queue the writer has sent frames it took.
func (o *outbound) written(progress, finals int) {
	o.mu.Lock()
	o.progress -= progress
	o.finals -= finals
	o.mu.Unlock()
	o.drained.Broadcast()
}

// waitFinalsBelow blocks the reader while n or more final frames wait.
// It reports false when the connection closed meanwhile.
func (o *outbound) waitFinalsBelow(n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.finals >= n && !o.closed {
		o.drained.Wait()
	}
	return !o.closed
}

// begin marks a call as in flight; false if another one is.
func (o *outbound) begin(id uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.busyCall {
		return false
	}
	o.busyCall, o.inFlight, o.callDrops = true, id, 0
	return true
}

// finishCall queues the final frame of the call in flight, stamped with the
// number of its progress frames that were dropped, and marks the connection
// free for the next call, all at once so that no other call can slip in
// between. It reports false when the connection is gone.
func (o *outbound) finishCall(f Frame) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.busyCall = false
	f.Dropped = o.callDrops
	o.callDrops = 0
	if o.closed {
		return false
	}
	o.frames = append(o.frames, queuedFrame{data: encodeFrame(f), final: true})
	o.finals++
	o.poke()
	return true
}

// inFlightID is the id of the call being answered.
func (o *outbound) inFlightID() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inFlight
}

// waitIdle blocks until no call is in flight and every final frame has
// been written, or the connection closed.
func (o *outbound) waitIdle() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for (o.busyCall || o.finals > 0) && !o.closed {
		o.drained.Wait()
	}
}

func (o *outbound) close() {
	o.mu.Lock()
	o.closed = true
	o.frames = nil
	o.mu.Unlock()
	o.drained.Broadcast()
	o.poke()
}
