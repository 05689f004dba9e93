// Package guests serves the observer to programs outside Vigil: a unix
// socket (/run/vigil/observer.sock) speaking newline-delimited JSON, through
// which a guest registers observers (a filter, actions, whether it decides
// held events), receives the events they match, answers holds and emits
// events of its own. Every guest uses the same core API as the in-process
// supervisor; none can stall the loop: a guest that stops reading loses its
// own events (counted), and a guest that never answers a hold is overruled
// at its deadline.
//
// Protocol, version 2 (a version 1 client is served the same way: version
// 2 only adds "watch"). Every line is one JSON object with an "op".
//
//	client: {"op":"hello","version":2,"name":"my-guest"}
//	server: {"op":"welcome","version":2,"guest":"my-guest#7"}
//	client: {"op":"observe","id":1,"filter":"source=uevent kind=add","actions":[...],
//	         "decides":true,"hold_timeout_ms":2000,"hold_default":"deny","queue":256}
//	server: {"op":"ok","id":1,"observer":12}
//	server: {"op":"event","observer":12,"event":{...},"dropped":0}
//	client: {"op":"answer","id":2,"observer":12,"hold":55,"verdict":"allow"}
//	client: {"op":"unobserve","id":3,"observer":12}
//	client: {"op":"emit","id":4,"kind":"backup-done","attrs":{"size":"12"}}
//	server: {"op":"error","id":N,"message":"..."}
//
// A client must say hello first. Requests with an "id" are answered with
// "ok" or "error" carrying the same id.
//
// Holding file accesses (version 2, root only): an observe request with a
// "watch" marks the paths with fanotify for the listed accesses ("open",
// "access", "exec"; default open) and narrows the observer's filter to
// those paths' events (source=fanotify mark=<path> kind=<access>);
// "tree":true marks whole subtrees. The marks go when the observer is
// unobserved or the guest disconnects.
//
//	client: {"op":"observe","id":5,"watch":{"paths":["/srv/x"],"access":["open","exec"]},
//	         "decides":true,"hold_timeout_ms":2000,"hold_default":"deny"}
//	server: {"op":"event","observer":13,"event":{"source":"fanotify","kind":"open",
//	         "attrs":{"path":"/srv/x","pid":"812","exe":"/usr/bin/cat",...},"hold":56,...}}
//	client: {"op":"answer","id":6,"observer":13,"hold":56,"verdict":"deny"}
//
// The accessor waits until every deciding observer answered (deny wins),
// or until the guest's hold_timeout_ms passes (then hold_default counts for
// it), and never longer than the fanotify source's own deadline. Without
// fanotify (kernel, privileges) a watch is refused with the reason.
package guests

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"vigil/observer"
	"vigil/observer/fanotify"
)

// Version is the protocol version this package speaks; MinVersion the
// oldest it still serves.
const (
	Version    = 2
	MinVersion = 1
)

// Watch limits, against a guest that would pin the kernel with marks.
const (
	MaxWatchPaths = 64
	maxPathLen    = 4096
)

// Watch asks for fanotify holds on paths.
type Watch struct {
	Paths []string `json:"paths"`
	// Access lists "open", "access", "exec"; empty means open.
	Access []string `json:"access,omitempty"`
	// Tree covers each path's whole subtree (fanotify.MarkTree).
	Tree bool `json:"tree,omitempty"`
}

// check validates a watch and gives its access mask.
func (w *Watch) check() (fanotify.Mask, error) {
	if len(w.Paths) == 0 {
		return 0, fmt.Errorf("watch: no paths")
	}
	if len(w.Paths) > MaxWatchPaths {
		return 0, fmt.Errorf("watch: %d paths, at most %d", len(w.Paths), MaxWatchPaths)
	}
	for _, p := range w.Paths {
		if !strings.HasPrefix(p, "/") || len(p) > maxPathLen || strings.IndexByte(p, 0) >= 0 {
			return 0, fmt.Errorf("watch: path %q must be absolute, without NUL, at most %d bytes", p, maxPathLen)
		}
	}
	access := w.Access
	if len(access) == 0 {
		access = []string{"open"}
	}
	mask, err := fanotify.ParseMask(access)
	if err != nil {
		return 0, fmt.Errorf("watch: %w", err)
	}
	return mask, nil
}

// kinds are the event kinds a watch's accesses produce.
func (w *Watch) kinds() []string {
	if len(w.Access) == 0 {
		return []string{"open"}
	}
	return w.Access
}

// MaxLine bounds one message.
const MaxLine = 64 * 1024

// Message is every field any op uses.
type Message struct {
	Op      string `json:"op"`
	ID      uint64 `json:"id,omitempty"`
	Version int    `json:"version,omitempty"`
	Name    string `json:"name,omitempty"`
	Guest   string `json:"guest,omitempty"`

	Filter        string            `json:"filter,omitempty"`
	Actions       []observer.Action `json:"actions,omitempty"`
	Decides       bool              `json:"decides,omitempty"`
	HoldTimeoutMS int64             `json:"hold_timeout_ms,omitempty"`
	HoldDefault   string            `json:"hold_default,omitempty"`
	Queue         int               `json:"queue,omitempty"`
	Watch         *Watch            `json:"watch,omitempty"`

	Observer uint64 `json:"observer,omitempty"`
	Hold     uint64 `json:"hold,omitempty"`
	Verdict  string `json:"verdict,omitempty"`

	Kind  string            `json:"kind,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`

	Event   *WireEvent `json:"event,omitempty"`
	Dropped uint64     `json:"dropped,omitempty"`
	Message string     `json:"message,omitempty"`
}

// WireEvent is an event as guests see it.
type WireEvent struct {
	Seq    uint64            `json:"seq"`
	Source string            `json:"source"`
	Kind   string            `json:"kind"`
	MonoNS int64             `json:"mono_ns"`
	Wall   time.Time         `json:"wall"`
	Attrs  map[string]string `json:"attrs,omitempty"`
	Hold   uint64            `json:"hold,omitempty"`
}

func wireEvent(ev *observer.Event) *WireEvent {
	w := &WireEvent{Seq: ev.Seq, Source: ev.Source, Kind: ev.Kind, MonoNS: int64(ev.Mono), Wall: ev.Wall, Attrs: ev.Attrs}
	if ev.Hold != nil {
		w.Hold = ev.Hold.ID
	}
	return w
}

// Decode reads one message and checks what its op needs.
func Decode(line []byte) (Message, error) {
	var m Message
	if len(line) > MaxLine {
		return m, fmt.Errorf("message of %d bytes exceeds %d", len(line), MaxLine)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("not a JSON message: %v", err)
	}
	switch m.Op {
	case "hello":
		if m.Version < MinVersion || m.Version > Version {
			return m, fmt.Errorf("protocol version %d not supported (this server speaks %d to %d)", m.Version, MinVersion, Version)
		}
	case "observe":
		if m.Decides && m.HoldTimeoutMS <= 0 {
			return m, fmt.Errorf("observe: a deciding observer needs hold_timeout_ms > 0")
		}
		if m.HoldTimeoutMS > int64(time.Hour/time.Millisecond) {
			return m, fmt.Errorf("observe: hold_timeout_ms above one hour")
		}
		if m.Queue < 0 || m.Queue > 65536 {
			return m, fmt.Errorf("observe: queue must be 0..65536")
		}
		if m.HoldDefault != "" {
			if _, err := observer.ParseVerdict(m.HoldDefault); err != nil {
				return m, fmt.Errorf("observe: %v", err)
			}
		}
		if m.Watch != nil {
			if _, err := m.Watch.check(); err != nil {
				return m, fmt.Errorf("observe: %v", err)
			}
		}
	case "unobserve":
		if m.Observer == 0 {
			return m, fmt.Errorf("unobserve: which observer?")
		}
	case "answer":
		if m.Observer == 0 || m.Hold == 0 {
			return m, fmt.Errorf("answer: needs observer and hold")
		}
		if _, err := observer.ParseVerdict(m.Verdict); err != nil || m.Verdict == "" {
			return m, fmt.Errorf("answer: verdict must be allow or deny")
		}
	case "emit":
		if m.Kind == "" {
			return m, fmt.Errorf("emit: needs a kind")
		}
	case "":
		return m, fmt.Errorf("message without op")
	default:
		return m, fmt.Errorf("unknown op %q", m.Op)
	}
	return m, nil
}
