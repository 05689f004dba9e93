package units

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vigil/observer"
	"vigil/observer/process"
	"vigil/units/exec"
	"vigil/units/loopdev"
)

// Mount helpers and network sources (the part of mount(8) Vigil keeps).
//
// A file system type with a user-space helper, /sbin/mount.TYPE (nfs,
// cifs, ntfs-3g, fuse.sshfs, ...), is mounted by running the helper as
// mount(8) does: "mount.TYPE WHAT WHERE [-s] -n -o OPTIONS [-t TYPE]".
// The helper is started on the loop through the manager's spawner (so the
// reaper, not os/exec, collects it) in the unit's cgroup (mount_cgroup.go)
// and in the manager's own process group:
// an automount's trigger lets that group through, so a helper mounting
// onto a trigger is not held by it. Its output goes to the unit's log,
// its exit status and last lines of output into the failure reason, and
// the unit's timeout kills it.
//
// NFS without mount.nfs is mounted by the kernel, which needs the
// server's address in addr=: Vigil resolves the host of "host:/export"
// (off the loop, within the unit's timeout) when the options lack it.

// mountHelperDirs are where mount(8) looks for mount.TYPE.
func mountHelperDirs() []string { return []string{"/sbin", "/usr/sbin", "/sbin/fs.d", "/sbin/fs"} }

// helperGrace is how long a helper's output may trail its exit (a daemon
// it left behind may hold the pipe open for ever).
const helperGrace = 500 * time.Millisecond

// helperTailLines are the last lines of a helper's output kept for the
// failure reason.
const helperTailLines = 3

// mountHelper is one run of a mount helper.
type mountHelper struct {
	path string
	args []string
	// subtype is set when the helper was found for the main type of a
	// type with a subtype (mount.fuse for fuse.sshfs): it gets -t TYPE.
	subtype bool
	// loopDev is the loop device made for the helper's source, closed
	// (left to autoclear) when the helper is done.
	loopDev *loopdev.Device

	pid        int
	op         int
	exit       *process.Exit
	outputDone bool
	tail       []string
	grace      observer.TimerID
}

func (h *mountHelper) name() string { return filepath.Base(h.path) }

// findMountHelper looks for mount.TYPE, then for a TYPE with a subtype
// ("fuse.sshfs") for mount.MAINTYPE, in dirs.
func findMountHelper(dirs []string, fstype string) *mountHelper {
	if fstype == "" || strings.ContainsAny(fstype, "/\x00") {
		return nil
	}
	try := func(t string) string {
		for _, d := range dirs {
			p := filepath.Join(d, "mount."+t)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	if p := try(fstype); p != "" {
		return &mountHelper{path: p}
	}
	if main, _, ok := strings.Cut(fstype, "."); ok && main != "" {
		if p := try(main); p != "" {
			return &mountHelper{path: p, subtype: true}
		}
	}
	return nil
}

// startHelper runs h for the mount operation op; on the loop.
func (mb *mount) startHelper(op int, h *mountHelper) {
	u := mb.u
	argv := append([]string{h.name()}, h.args...)
	spec := &exec.Spec{Path: h.path, Argv: argv, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Dir: "/", Stdout: exec.Pipe(), Stderr: exec.SameAsStdout()}
	started, err := u.m.spawnInCgroup(u, spec, mb.cgroup)
	if err != nil {
		h.release(u.m)
		mb.mountDone(op, fmt.Errorf("run %s: %w", h.path, err))
		return
	}
	h.pid, h.op = started.PID, op
	mb.helper = h
	u.m.watchPID(h.pid, mb)
	u.debugf("Running %s (pid %d).", strings.Join(argv, " "), h.pid)
	out := started.Stdout
	if out == nil {
		h.outputDone = true
		return
	}
	loop := u.m.loop
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(io.LimitReader(out, 64<<10))
		for sc.Scan() {
			line := sc.Text()
			loop.Do(func() { mb.helperLine(h, line) })
		}
		loop.Do(func() {
			h.outputDone = true
			mb.helperMaybeDone(h)
		})
	}()
}

func (mb *mount) helperLine(h *mountHelper, line string) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	mb.u.infof("%s: %s", h.name(), line)
	h.tail = append(h.tail, line)
	if len(h.tail) > helperTailLines {
		h.tail = h.tail[1:]
	}
}

// processExited is told of the helper's exit (the mount is its process
// owner).
func (mb *mount) processExited(pid int, ex process.Exit) {
	h := mb.helper
	if h == nil || h.pid != pid {
		return
	}
	h.exit = &ex
	if !h.outputDone {
		h.grace = mb.u.m.AfterFunc(helperGrace, func() {
			h.grace = 0
			h.outputDone = true
			mb.helperMaybeDone(h)
		})
	}
	mb.helperMaybeDone(h)
}

// helperMaybeDone ends the mount operation once the helper exited and its
// output was read (or trailed for helperGrace).
func (mb *mount) helperMaybeDone(h *mountHelper) {
	if h.exit == nil || !h.outputDone || mb.helper != h {
		return
	}
	mb.helper = nil
	h.release(mb.u.m)
	var err error
	if ex := *h.exit; !ex.Exited() || ex.Code != 0 {
		err = fmt.Errorf("%s exited with %s", h.name(), ex)
		if len(h.tail) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.Join(h.tail, "; "))
		}
	}
	mb.mountDone(h.op, err)
}

// killHelper ends a helper whose mount was given up (timeout, stop).
func (mb *mount) killHelper() {
	h := mb.helper
	if h == nil {
		return
	}
	mb.helper = nil
	h.release(mb.u.m)
	if h.exit == nil {
		mb.u.noticef("Killing %s (pid %d).", h.name(), h.pid)
		if err := unix.Kill(h.pid, unix.SIGKILL); err != nil {
			mb.u.warnf("kill %s (pid %d): %v", h.name(), h.pid, err)
		}
	}
}

// release drops what the helper run held: its grace timer and its loop
// device.
func (h *mountHelper) release(m *Manager) {
	if h.grace != 0 {
		m.StopTimer(h.grace)
		h.grace = 0
	}
	if h.loopDev != nil {
		h.loopDev.Close()
		h.loopDev = nil
	}
}

func isNFS(fstype string) bool { return fstype == "nfs" || fstype == "nfs4" }

// nfsLookupLimit bounds the name lookup of an NFS server when the unit's
// timeout is longer (or infinite).
const nfsLookupLimit = 30 * time.Second

// nfsAddrOption gives the data options of a kernel NFS mount of what
// ("host:/export", "[v6addr]:/export") with addr= added when missing: the
// kernel does not resolve names. The lookup runs on the caller's
// goroutine (never the loop) within timeout.
func nfsAddrOption(what, data string, timeout time.Duration) (string, error) {
	for _, o := range splitOptions(data) {
		if strings.HasPrefix(o, "addr=") {
			return data, nil
		}
	}
	host, err := nfsHost(what)
	if err != nil {
		return "", err
	}
	addr := host
	if net.ParseIP(host) == nil {
		limit := nfsLookupLimit
		if timeout > 0 && timeout < limit {
			limit = timeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return "", fmt.Errorf("nfs server %s: %w (set addr= in the options, or install mount.nfs)", host, err)
		}
		if len(addrs) == 0 {
			return "", fmt.Errorf("nfs server %s: no address", host)
		}
		addr = addrs[0]
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
				addr = a // as mount.nfs, IPv4 first
				break
			}
		}
	}
	if data == "" {
		return "addr=" + addr, nil
	}
	return data + ",addr=" + addr, nil
}

// nfsHost is the server part of an NFS source.
func nfsHost(what string) (string, error) {
	if rest, ok := strings.CutPrefix(what, "["); ok {
		host, _, ok := strings.Cut(rest, "]:")
		if !ok || host == "" {
			return "", fmt.Errorf("nfs source %q: want [address]:/export", what)
		}
		return host, nil
	}
	host, _, ok := strings.Cut(what, ":")
	if !ok || host == "" || strings.ContainsAny(host, "/ ,") {
		return "", fmt.Errorf("nfs source %q: want host:/export", what)
	}
	return host, nil
}
