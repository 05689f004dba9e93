package fanotify

import (
	"bytes"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// procReader reads /proc for the reader goroutine. It reuses one buffer,
// so it belongs to that goroutine alone.
type procReader struct {
	buf  [4096]byte
	link [unix.PathMax]byte
}

// readFile reads a small /proc file into the shared buffer.
func (r *procReader) readFile(path string) []byte {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	n := 0
	for n < len(r.buf) {
		m, err := unix.Read(fd, r.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	return r.buf[:n]
}

func (r *procReader) readlink(path string) string {
	n, err := unix.Readlink(path, r.link[:])
	if err != nil || n < 0 {
		return ""
	}
	return string(r.link[:n])
}

// fdPath is the path of an event's file descriptor.
func (r *procReader) fdPath(fd int32) string {
	return r.readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
}

// parentPID reads the PPid from /proc/pid/stat ("pid (comm) S ppid ..."),
// the comm being everything up to the last ')'.
func parseStatPPID(stat []byte) (ppid int, comm string, ok bool) {
	open := bytes.IndexByte(stat, '(')
	end := bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return 0, "", false
	}
	comm = string(stat[open+1 : end])
	fields := bytes.Fields(stat[end+1:])
	if len(fields) < 2 {
		return 0, comm, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return 0, comm, false
	}
	return ppid, comm, true
}

// parseStatusUID finds the real uid in /proc/pid/status ("Uid:\treal\teff...").
func parseStatusUID(status []byte) string {
	for len(status) > 0 {
		line := status
		if i := bytes.IndexByte(status, '\n'); i >= 0 {
			line, status = status[:i], status[i+1:]
		} else {
			status = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
			if f := bytes.Fields(rest); len(f) > 0 {
				return string(f[0])
			}
			return ""
		}
	}
	return ""
}

// parseCgroup2 finds the unified hierarchy's path ("0::/path").
func parseCgroup2(data []byte) string {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(rest)
		}
	}
	return ""
}

// fileID identifies a file across paths.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

// process is what the source tells observers about an accessor.
type process struct {
	ppid                 int
	comm, uid, exe, cgrp string
}

func (r *procReader) process(pid int32) process {
	dir := "/proc/" + strconv.Itoa(int(pid))
	var p process
	p.ppid, p.comm, _ = parseStatPPID(r.readFile(dir + "/stat"))
	p.uid = parseStatusUID(r.readFile(dir + "/status"))
	p.cgrp = parseCgroup2(r.readFile(dir + "/cgroup"))
	p.exe = r.readlink(dir + "/exe")
	return p
}

// runsImage tells whether pid is a child of parent still running one of
// the images (our executable, the exec stub): a process Vigil forked that
// has not exec'd the program yet.
func (r *procReader) runsImage(pid int32, parent int, images []fileID) bool {
	dir := "/proc/" + strconv.Itoa(int(pid))
	ppid, _, ok := parseStatPPID(r.readFile(dir + "/stat"))
	if !ok || ppid != parent {
		return false
	}
	id, ok := statID(dir + "/exe")
	return ok && slices.Contains(images, id)
}
