// Package loopdev attaches regular files to loop block devices, as
// losetup and mount(8)'s "loop" option do, so that mount units can mount
// an image file. It owns the calls to /dev/loop-control and the loop
// ioctls; nothing else in Vigil touches loop devices.
//
// Devices are attached with LO_FLAGS_AUTOCLEAR: the kernel detaches one
// when its last user goes, so a mounted image keeps its device exactly as
// long as the mount, and a failed mount (whose only user is the Device
// Close releases) leaves nothing behind.
package loopdev

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ControlPath is the loop driver's control device.
const ControlPath = "/dev/loop-control"

// Options say how a file is attached.
type Options struct {
	// ReadOnly attaches the device read-only (and opens the file so).
	ReadOnly bool
	// Offset and SizeLimit (bytes; 0: to the end) select part of the
	// file, as mount's offset= and sizelimit= options.
	Offset, SizeLimit uint64
	// DevDir is where the loopN nodes are; default /dev.
	DevDir string
}

// Device is an attached loop device. Close it once its user (a mount)
// holds it: with autoclear the kernel then detaches it when that user
// goes.
type Device struct {
	// Path is the device node, "/dev/loop3".
	Path string
	// Number is N of loopN.
	Number int
	f      *os.File
}

// Close releases this process's descriptor of the device.
func (d *Device) Close() error { return d.f.Close() }

// attempts bounds the retries when another process takes the free device
// between LOOP_CTL_GET_FREE and the configuration.
const attempts = 16

// Attach attaches the regular file backing to a free loop device.
func Attach(backing string, o Options) (*Device, error) {
	if o.DevDir == "" {
		o.DevDir = "/dev"
	}
	fi, err := os.Stat(backing)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("loop: %s is not a regular file", backing)
	}
	flags := os.O_RDWR
	if o.ReadOnly {
		flags = os.O_RDONLY
	}
	file, err := os.OpenFile(backing, flags|unix.O_CLOEXEC, 0)
	if err != nil && !o.ReadOnly && (errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES)) {
		// As mount(8): a file that cannot be written is attached
		// read-only.
		o.ReadOnly = true
		file, err = os.OpenFile(backing, os.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("loop: open %s: %w", backing, err)
	}
	defer file.Close()
	ctl, err := os.OpenFile(o.DevDir+"/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(file.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if o.ReadOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	cfg.Info.Offset, cfg.Info.Sizelimit = o.Offset, o.SizeLimit
	name := backing
	if len(name) >= len(cfg.Info.File_name) {
		name = name[len(name)-len(cfg.Info.File_name)+1:]
	}
	copy(cfg.Info.File_name[:], name)
	var lastErr error
	for range attempts {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop: no free loop device: %w", err)
		}
		path := fmt.Sprintf("%s/loop%d", o.DevDir, n)
		dev, err := openNode(path, o.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("loop: %w", err)
		}
		err = configure(dev, &cfg)
		if err == nil {
			return &Device{Path: path, Number: n, f: dev}, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("loop: attach %s to %s: %w", backing, path, err)
		}
		lastErr = err // someone else took it: ask again
	}
	return nil, fmt.Errorf("loop: attach %s: every free device was taken: %w", backing, lastErr)
}

// openNode opens a loop device node; a device the driver just added may
// not have its node in devtmpfs yet.
func openNode(path string, readOnly bool) (*os.File, error) {
	flags := os.O_RDWR
	if readOnly {
		flags = os.O_RDONLY
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return f, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// configure attaches with LOOP_CONFIGURE (Linux 5.8), or with LOOP_SET_FD
// and LOOP_SET_STATUS64 on older kernels.
func configure(dev *os.File, cfg *unix.LoopConfig) error {
	fd := int(dev.Fd())
	err := unix.IoctlLoopConfigure(fd, cfg)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, int(cfg.Fd)); err != nil {
		return err
	}
	info := cfg.Info
	if err := unix.IoctlLoopSetStatus64(fd, &info); err != nil {
		unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// BackingFile gives the file attached to the loop device node path, from
// sysfs (loop/backing_file), or "" when it has none.
func BackingFile(sysRoot, path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/dev/block/%d:%d/loop/backing_file", sysRoot, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))))
	if err != nil {
		return ""
	}
	return string(trimNewline(b))
}

func trimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		return b[:n-1]
	}
	return b
}
