package observer

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Verdict is the answer to a held event.
type Verdict int

const (
	// Allow lets the held accessor go on.
	Allow Verdict = iota
	// Deny makes the held access fail (EPERM for fanotify, an error for autofs).
	Deny
)

func (v Verdict) String() string {
	if v == Deny {
		return "deny"
	}
	return "allow"
}

// ParseVerdict reads "allow" or "deny".
func ParseVerdict(s string) (Verdict, error) {
	switch strings.ToLower(s) {
	case "allow", "":
		return Allow, nil
	case "deny":
		return Deny, nil
	}
	return Allow, fmt.Errorf("verdict %q: expected allow or deny", s)
}

// Event is one thing that happened, as a source saw it. Observers are handed
// the same *Event, some on other goroutines (Queue readers): guests must
// treat it, its Attrs and its Hold as read-only.
type Event struct {
	// Seq numbers events in the order the loop dispatched them.
	Seq    uint64
	Source string
	Kind   string
	// Attrs are the event's matchable attributes (uevent keys, pid, path...).
	Attrs map[string]string
	// Mono is the monotonic time since the loop started; Wall the wall clock.
	Mono time.Duration
	Wall time.Time
	// Hold is non-nil when someone is waiting for a verdict on this event.
	Hold *Hold
	// Payload carries typed data for in-process guests; it is never sent
	// over the guest socket.
	Payload any
}

// Attr returns an attribute or "".
func (e *Event) Attr(key string) string { return e.Attrs[key] }

// String renders the event in the style of `udevadm monitor`.
func (e *Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s [%d.%06d]", strings.ToUpper(e.Source), e.Kind, int64(e.Mono/time.Second), int64(e.Mono%time.Second/time.Microsecond))
	keys := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, e.Attrs[k])
	}
	if e.Hold != nil {
		fmt.Fprintf(&b, " hold=%d", e.Hold.ID)
	}
	return b.String()
}

// Hold is the part of an event that someone outside the loop waits on.
// The loop never changes a Hold after dispatch; a source posts each Hold
// once.
type Hold struct {
	// ID is set by the loop at dispatch; deciders Answer with it.
	ID uint64
	// Release is called exactly once, on the loop goroutine, with the final
	// verdict. Sources write the verdict to the kernel here.
	Release func(Verdict)
	// Deadline bounds the wait, counted from dispatch, whatever the
	// observers say; zero means the deciders' timeouts alone decide.
	Deadline time.Duration
	// Default is the verdict when nobody decides in time and no observer
	// configured its own default.
	Default Verdict
}
