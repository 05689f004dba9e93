// Command gosd is a test service written the way daemons outside Vigil
// are: against github.com/coreos/go-systemd/v22. It takes its sockets with
// activation.Listeners or activation.Files and reports readiness with
// daemon.SdNotify, so the manager's tests exercise the protocols through
// a client no one here wrote. Only the fd store, which go-systemd cannot
// send, is spoken directly (sendmsg with SCM_RIGHTS, then a barrier).
//
//	gosd serve DELAY      wait DELAY, take the listeners, READY=1, answer
//	                      each connection with "hello from PID\n"
//	gosd files OUT        write "N name1:name2" of activation.Files to OUT
//	                      and the LISTEN_FDNAMES, READY=1, then serve
//	gosd fdstore OUT      first run: store a memfd named "state" holding
//	                      "generation 1" and exit 3; later runs: write what
//	                      the stored fd holds to OUT and report READY=1
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: gosd serve DELAY | files OUT | fdstore OUT")
	}
	switch os.Args[1] {
	case "serve":
		delay, err := time.ParseDuration(os.Args[2])
		if err != nil {
			fail("delay: %v", err)
		}
		time.Sleep(delay)
		ls, err := activation.Listeners()
		if err != nil || len(ls) == 0 {
			fail("no listeners (%v); LISTEN_PID=%s LISTEN_FDS=%s pid=%d", err, os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getpid())
		}
		notify(fmt.Sprintf("READY=1\nSTATUS=serving %d listeners", len(ls)))
		serve(ls)
	case "files":
		names := os.Getenv("LISTEN_FDNAMES")
		files := activation.Files(true)
		var got []string
		for _, f := range files {
			got = append(got, f.Name())
		}
		line := fmt.Sprintf("%d %s %s\n", len(files), strings.Join(got, ":"), names)
		if err := os.WriteFile(os.Args[2], []byte(line), 0o644); err != nil {
			fail("%v", err)
		}
		var ls []net.Listener
		for _, f := range files {
			if l, err := net.FileListener(f); err == nil {
				ls = append(ls, l)
			}
		}
		notify("READY=1")
		serve(ls)
	case "fdstore":
		for _, f := range activation.Files(true) {
			if f.Name() != "state" {
				continue
			}
			buf := make([]byte, 64)
			n, err := unix.Pread(int(f.Fd()), buf, 0)
			if err != nil {
				fail("read stored fd: %v", err)
			}
			if err := os.WriteFile(os.Args[2], []byte("restored: "+string(buf[:n])), 0o644); err != nil {
				fail("%v", err)
			}
			notify("READY=1\nSTATUS=restored")
			select {}
		}
		fd, err := unix.MemfdCreate("state", 0)
		if err != nil {
			fail("memfd: %v", err)
		}
		unix.Write(fd, []byte("generation 1"))
		storeFD(fd, "state")
		os.WriteFile(os.Args[2], []byte("stored"), 0o644)
		os.Exit(3)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

func notify(state string) {
	sent, err := daemon.SdNotify(false, state)
	if err != nil || !sent {
		fail("sd_notify %q: sent=%v err=%v (NOTIFY_SOCKET=%q)", state, sent, err, os.Getenv("NOTIFY_SOCKET"))
	}
}

func serve(ls []net.Listener) {
	for _, l := range ls {
		go func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hello from %d\n", os.Getpid())
				c.Close()
			}
		}(l)
	}
	select {}
}

// storeFD sends FDSTORE=1 with fd, then waits on a barrier so that the
// manager has seen it before this process exits.
func storeFD(fd int, name string) {
	addr := &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}
	if strings.HasPrefix(addr.Name, "@") {
		addr.Name = "\x00" + addr.Name[1:]
	}
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail("socket: %v", err)
	}
	if err := unix.Sendmsg(s, []byte("FDSTORE=1\nFDNAME="+name), unix.UnixRights(fd), addr, 0); err != nil {
		fail("send FDSTORE: %v", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		fail("pipe: %v", err)
	}
	if err := unix.Sendmsg(s, []byte("BARRIER=1"), unix.UnixRights(p[1]), addr, 0); err != nil {
		fail("send BARRIER: %v", err)
	}
	unix.Close(p[1])
	pfd := []unix.PollFd{{Fd: int32(p[0]), Events: 0}}
	if n, err := unix.Poll(pfd, 5000); n != 1 || err != nil {
		fail("barrier: no hang-up within 5s (n=%d err=%v)", n, err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gosd: "+format+"\n", args...)
	os.Exit(1)
}
