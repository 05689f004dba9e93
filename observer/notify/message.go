package notify

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Message is one sd_notify datagram, parsed. Fields left at their zero
// value were absent (Status is a pointer because an empty STATUS= clears
// the text, which is not the same as saying nothing).
type Message struct {
	// PID, UID and GID are the sender's, from SCM_CREDENTIALS: the kernel
	// vouches for them (only CAP_SYS_ADMIN may claim another PID).
	PID, UID, GID int

	Ready     bool // READY=1
	Reloading bool // RELOADING=1
	Stopping  bool // STOPPING=1
	// LastState is the last of READY=1, RELOADING=1 and STOPPING=1 in the
	// datagram ("READY", "RELOADING", "STOPPING" or ""): systemd lets the
	// last one win when a datagram carries several.
	LastState string

	Watchdog        bool // WATCHDOG=1: a ping
	WatchdogTrigger bool // WATCHDOG=trigger: fail as if the watchdog expired
	FDStore         bool // FDSTORE=1
	FDStoreRemove   bool // FDSTOREREMOVE=1
	// FDNoPoll is FDPOLL=0: do not watch the stored fds for POLLHUP/POLLERR.
	FDNoPoll bool
	// Barrier is BARRIER=1. The socket answers a well-formed barrier itself
	// (see Listen); the field tells observers that one passed.
	Barrier bool

	Status   *string // STATUS=text; a pointer to "" clears the status
	MainPID  int     // MAINPID=n, 0 when absent
	Errno    int     // ERRNO=n, 0 when absent
	BusError string  // BUSERROR=org.freedesktop.DBus.Error.X
	// NotifyAccess is NOTIFYACCESS=none|main|exec|all (systemd 254).
	NotifyAccess string

	WatchdogUSec      uint64 // WATCHDOG_USEC=n
	ExtendTimeoutUSec uint64 // EXTEND_TIMEOUT_USEC=n
	MonotonicUSec     uint64 // MONOTONIC_USEC=n (sent with RELOADING=1)
	FDName            string // FDNAME=name, for FDSTORE and FDSTOREREMOVE

	// FDs arrived with the datagram (SCM_RIGHTS), close-on-exec. Whoever
	// takes the message owns them: keep them (the fd store) or Close them.
	FDs []*os.File

	// Unknown holds well-formed assignments Vigil does not act on (unknown
	// keys, or known keys with values systemd ignores, such as READY=0).
	Unknown []string
	// Malformed counts lines that are not KEY=VALUE or whose value does
	// not parse (MAINPID=abc); they are ignored.
	Malformed int
}

// Close closes every fd the message carries and forgets them.
func (m *Message) Close() {
	for _, f := range m.FDs {
		f.Close()
	}
	m.FDs = nil
}

// MaxStatus bounds STATUS= text, as systemd does (16 KiB); a datagram is
// smaller anyway unless MaxSize was raised.
const MaxStatus = 16 << 10

// ParseMessage reads the text of a datagram: newline-separated KEY=VALUE
// assignments, UTF-8. It never fails: what it cannot use is counted in
// Malformed or kept in Unknown. Credentials and fds are the caller's to
// fill in.
func ParseMessage(text []byte) Message {
	var m Message
	for len(text) > 0 {
		var line []byte
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, nil
		}
		if len(line) == 0 {
			continue // an empty line (a trailing newline) says nothing
		}
		if !m.assign(line) {
			m.Malformed++
		}
	}
	return m
}

// assign applies one line and reports whether it was well-formed.
func (m *Message) assign(line []byte) bool {
	eq := bytes.IndexByte(line, '=')
	if eq <= 0 || !validKey(line[:eq]) || !utf8.Valid(line[eq+1:]) {
		return false
	}
	key, value := string(line[:eq]), string(line[eq+1:])
	unknown := func() bool { m.Unknown = append(m.Unknown, key+"="+value); return true }
	switch key {
	case "READY", "RELOADING", "STOPPING":
		if value != "1" {
			return unknown()
		}
		switch key {
		case "READY":
			m.Ready = true
		case "RELOADING":
			m.Reloading = true
		case "STOPPING":
			m.Stopping = true
		}
		m.LastState = key
	case "STATUS":
		if len(value) > MaxStatus {
			return false
		}
		m.Status = &value
	case "MAINPID":
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			return false
		}
		m.MainPID = n
	case "ERRNO":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return false
		}
		m.Errno = n
	case "BUSERROR":
		m.BusError = value
	case "WATCHDOG":
		switch value {
		case "1":
			m.Watchdog = true
		case "trigger":
			m.WatchdogTrigger = true
		default:
			return unknown()
		}
	case "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC", "MONOTONIC_USEC":
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return false
		}
		switch key {
		case "WATCHDOG_USEC":
			m.WatchdogUSec = n
		case "EXTEND_TIMEOUT_USEC":
			m.ExtendTimeoutUSec = n
		default:
			m.MonotonicUSec = n
		}
	case "FDSTORE", "FDSTOREREMOVE", "BARRIER":
		if value != "1" {
			return unknown()
		}
		switch key {
		case "FDSTORE":
			m.FDStore = true
		case "FDSTOREREMOVE":
			m.FDStoreRemove = true
		default:
			m.Barrier = true
		}
	case "FDPOLL":
		if value != "0" {
			return unknown()
		}
		m.FDNoPoll = true
	case "FDNAME":
		if !ValidFDName(value) {
			return false
		}
		m.FDName = value
	case "NOTIFYACCESS":
		if _, ok := ParseAccess(value); !ok {
			return false
		}
		m.NotifyAccess = value
	default:
		return unknown()
	}
	return true
}

// validKey accepts what systemd's environment assignments allow as a name:
// ASCII letters, digits and '_', not starting with a digit.
func validKey(k []byte) bool {
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return len(k) > 0
}

// ValidFDName checks a file descriptor name as systemd does: 1..255
// printable ASCII characters, no spaces and no ':' (the separator of
// LISTEN_FDNAMES).
func ValidFDName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ':' {
			return false
		}
	}
	return true
}

// attrs renders the message as event attributes: the sender and every
// honoured key present, lower-case, with its value.
func (m *Message) attrs() map[string]string {
	a := map[string]string{
		"pid": strconv.Itoa(m.PID),
		"uid": strconv.Itoa(m.UID),
		"gid": strconv.Itoa(m.GID),
	}
	set := func(ok bool, key, value string) {
		if ok {
			a[key] = value
		}
	}
	set(m.Ready, "ready", "1")
	set(m.Reloading, "reloading", "1")
	set(m.Stopping, "stopping", "1")
	set(m.LastState != "", "state", strings.ToLower(m.LastState))
	set(m.Watchdog, "watchdog", "1")
	set(m.WatchdogTrigger, "watchdog", "trigger")
	set(m.FDStore, "fdstore", "1")
	set(m.FDStoreRemove, "fdstoreremove", "1")
	set(m.FDNoPoll, "fdpoll", "0")
	set(m.Barrier, "barrier", "1")
	if m.Status != nil {
		a["status"] = *m.Status
	}
	set(m.MainPID != 0, "mainpid", strconv.Itoa(m.MainPID))
	set(m.Errno != 0, "errno", strconv.Itoa(m.Errno))
	set(m.BusError != "", "buserror", m.BusError)
	set(m.NotifyAccess != "", "notifyaccess", m.NotifyAccess)
	set(m.WatchdogUSec != 0, "watchdog_usec", strconv.FormatUint(m.WatchdogUSec, 10))
	set(m.ExtendTimeoutUSec != 0, "extend_timeout_usec", strconv.FormatUint(m.ExtendTimeoutUSec, 10))
	set(m.MonotonicUSec != 0, "monotonic_usec", strconv.FormatUint(m.MonotonicUSec, 10))
	set(m.FDName != "", "fdname", m.FDName)
	set(len(m.FDs) > 0, "fds", strconv.Itoa(len(m.FDs)))
	return a
}
