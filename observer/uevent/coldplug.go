package uevent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxUeventFile bounds how much of a device's uevent file is read.
const maxUeventFile = MaxMessageSize

// Coldplug synthesises an "add" uevent for every device under
// sysRoot/devices, parents before children, as `udevadm trigger
// --type=devices --action=add` would make the kernel send, but without
// writing to the kernel: each device's uevent file is read and its
// SUBSYSTEM taken from the "subsystem" link. The events carry
// SYNTH_UUID=0, as the kernel's own synthetic events do, and Seqnum 0.
//
// It returns the number of events emitted. Devices that vanish during the
// walk are skipped; other unreadable devices are skipped too and their
// errors joined into the returned error, so one bad driver does not hide
// the rest of the machine.
func Coldplug(sysRoot string, emit func(*Uevent)) (int, error) {
	devices := filepath.Join(sysRoot, "devices")
	if _, err := os.Stat(devices); err != nil {
		return 0, fmt.Errorf("coldplug: %w", err)
	}
	var errs []error
	count := 0
	buf := make([]byte, maxUeventFile)
	err := filepath.WalkDir(devices, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !gone(err) {
				errs = append(errs, fmt.Errorf("coldplug: %w", err))
			}
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() || path == devices {
			return nil
		}
		u, err := readDevice(sysRoot, path, buf)
		if err != nil {
			if !gone(err) {
				errs = append(errs, err)
			}
			return nil
		}
		if u != nil {
			emit(u)
			count++
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("coldplug %s: %w", devices, err))
	}
	return count, errors.Join(errs...)
}

// gone reports errors of a device that disappeared (or never answers
// reads, as some drivers' uevent files do): not worth reporting.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoDevice)
}

var errNoDevice = errors.New("no such device")

// readDevice reads dir's uevent file; it returns nil without error when
// dir is not a device (has no uevent file).
func readDevice(sysRoot, dir string, buf []byte) (*Uevent, error) {
	f, err := os.Open(filepath.Join(dir, "uevent"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("coldplug %s: %w", dir, err)
	}
	n, err := readFull(f, buf)
	f.Close()
	if err != nil {
		if isENODEV(err) {
			return nil, errNoDevice
		}
		return nil, fmt.Errorf("coldplug read %s/uevent: %w", dir, err)
	}
	rel, err := filepath.Rel(sysRoot, dir)
	if err != nil {
		return nil, fmt.Errorf("coldplug %s: %w", dir, err)
	}
	return synthesise("/"+filepath.ToSlash(rel), subsystemOf(dir), buf[:n])
}

// synthesise builds the "add" event for a device from its uevent file's
// KEY=VALUE lines.
func synthesise(devpath, subsystem string, content []byte) (*Uevent, error) {
	u := &Uevent{Env: make(map[string]string, 12)}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(nil, maxUeventFile)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok || len(k) == 0 {
			return nil, fmt.Errorf("coldplug %s: uevent line %q is not KEY=VALUE", devpath, truncate(line))
		}
		// The same rules as for a netlink message, so that a coldplugged
		// device is an event the uevent parser would accept too.
		if err := checkKey(string(k)); err != nil {
			return nil, fmt.Errorf("coldplug %s: %w", devpath, err)
		}
		u.Env[string(k)] = string(v)
	}
	u.Env["ACTION"] = "add"
	u.Env["DEVPATH"] = devpath
	u.Env["SYNTH_UUID"] = "0"
	if subsystem != "" {
		u.Env["SUBSYSTEM"] = subsystem
	}
	if len(u.Env) > maxKeys {
		return nil, fmt.Errorf("coldplug %s: %w", devpath, malformed("more than %d properties", maxKeys))
	}
	if err := u.fill(); err != nil {
		return nil, fmt.Errorf("coldplug %s: %w", devpath, err)
	}
	return u, nil
}

// subsystemOf is the name of the subsystem a device's "subsystem" link
// points to ("/sys/class/net" gives "net"), or "".
func subsystemOf(dir string) string {
	target, err := os.Readlink(filepath.Join(dir, "subsystem"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// readFull reads until EOF or buf is full (sysfs files arrive in one read,
// but a fake tree on a normal file system may not).
func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		if m == 0 {
			return n, nil
		}
	}
	return n, nil
}

func isENODEV(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO)
}
