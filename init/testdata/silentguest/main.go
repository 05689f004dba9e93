// Command silentguest is a static helper the guest tests run inside the
// QEMU guest: an outside guest of Vigil's observer socket that holds
// file accesses and never answers them. It says hello (protocol 2),
// registers one deciding observer with a path watch, prints "watching",
// and from then on only prints the held events it receives ("event
// hold=H path=P pid=N"), so the observer's hold-timeout must overrule
// it. It speaks the wire protocol by hand (observer/guests documents
// it), as a guest written by someone else would.
//
//	silentguest [-socket PATH] [-hold-timeout D] [-hold-default V] PATH...
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

// message is the part of the protocol this guest uses.
type message struct {
	Op            string `json:"op"`
	ID            uint64 `json:"id,omitempty"`
	Version       int    `json:"version,omitempty"`
	Name          string `json:"name,omitempty"`
	Guest         string `json:"guest,omitempty"`
	Decides       bool   `json:"decides,omitempty"`
	HoldTimeoutMS int64  `json:"hold_timeout_ms,omitempty"`
	HoldDefault   string `json:"hold_default,omitempty"`
	Watch         *watch `json:"watch,omitempty"`
	Observer      uint64 `json:"observer,omitempty"`
	Message       string `json:"message,omitempty"`
	Event         *struct {
		Source string            `json:"source"`
		Kind   string            `json:"kind"`
		Attrs  map[string]string `json:"attrs"`
		Hold   uint64            `json:"hold"`
	} `json:"event,omitempty"`
}

type watch struct {
	Paths  []string `json:"paths"`
	Access []string `json:"access,omitempty"`
}

func main() {
	socket := flag.String("socket", "/run/vigil/observer.sock", "Vigil's observer socket")
	holdTimeout := flag.Duration("hold-timeout", 2*time.Second, "how long Vigil waits for this guest's answer")
	holdDefault := flag.String("hold-default", "deny", "the verdict Vigil applies when the guest does not answer")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: silentguest [-socket PATH] [-hold-timeout D] [-hold-default V] PATH...")
		os.Exit(2)
	}
	if err := run(*socket, *holdTimeout, *holdDefault, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "silentguest:", err)
		os.Exit(1)
	}
}

func run(socket string, holdTimeout time.Duration, holdDefault string, paths []string) error {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	in := bufio.NewScanner(conn)
	in.Buffer(make([]byte, 64*1024), 64*1024)
	enc := json.NewEncoder(conn) // one object per line, as the protocol wants
	next := func() (message, error) {
		if !in.Scan() {
			if err := in.Err(); err != nil {
				return message{}, err
			}
			return message{}, fmt.Errorf("the server closed the connection")
		}
		var m message
		if err := json.Unmarshal(in.Bytes(), &m); err != nil {
			return m, fmt.Errorf("bad line %q: %w", in.Text(), err)
		}
		return m, nil
	}

	if err := enc.Encode(message{Op: "hello", Version: 2, Name: "silentguest"}); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	m, err := next()
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if m.Op != "welcome" {
		return fmt.Errorf("hello: answered %q: %s", m.Op, m.Message)
	}
	guest := m.Guest
	req := message{Op: "observe", ID: 1, Decides: true, HoldTimeoutMS: holdTimeout.Milliseconds(),
		HoldDefault: holdDefault, Watch: &watch{Paths: paths, Access: []string{"open"}}}
	if err := enc.Encode(req); err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	for {
		m, err = next()
		if err != nil {
			return fmt.Errorf("observe: %w", err)
		}
		if m.ID == 1 {
			break
		}
	}
	if m.Op != "ok" {
		return fmt.Errorf("observe: answered %q: %s", m.Op, m.Message)
	}
	fmt.Printf("watching as %s, observer %d\n", guest, m.Observer)
	// Read on, never answer.
	for {
		m, err := next()
		if err != nil {
			return err
		}
		if m.Op == "event" && m.Event != nil {
			fmt.Printf("event hold=%d path=%s pid=%s\n", m.Event.Hold, m.Event.Attrs["path"], m.Event.Attrs["pid"])
		}
	}
}
