package autofs

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is the autofs miscellaneous device.
const ControlPath = "/dev/autofs"

// The autofs_dev_ioctl commands (linux/auto_dev-ioctl.h). Each ioctl number
// is _IOWR(0x93, cmd, struct autofs_dev_ioctl).
const (
	cmdVersion      = 0x71
	cmdProtoVer     = 0x72
	cmdProtoSubVer  = 0x73
	cmdOpenMount    = 0x74
	cmdCloseMount   = 0x75
	cmdReady        = 0x76
	cmdFail         = 0x77
	cmdSetPipeFD    = 0x78
	cmdCatatonic    = 0x79
	cmdTimeout      = 0x7a
	cmdRequester    = 0x7b
	cmdExpire       = 0x7c
	cmdAskUmount    = 0x7d
	cmdIsMountPoint = 0x7e
)

// devIoctlSize is sizeof(struct autofs_dev_ioctl) without the path: four
// 32-bit header fields and an 8-byte union of arguments.
const devIoctlSize = 24

// The control interface version Vigil speaks. The kernel accepts any minor
// version up to its own (1.1 since Linux 4.x).
const (
	devIoctlMajor = 1
	devIoctlMinor = 0
)

// Expire modes of the EXPIRE command (AUTOFS_EXP_*).
const (
	ExpireNormal    = 0
	ExpireImmediate = 1
	ExpireLeaves    = 2
	ExpireForced    = 4
)

// SuperMagic is the f_type statfs reports for an autofs mount.
const SuperMagic = 0x0187

func devIoctlNumber(cmd uintptr) uintptr {
	const iocWrite, iocRead = 1, 2
	return (iocRead|iocWrite)<<30 | devIoctlSize<<16 | 0x93<<8 | cmd
}

// devIoctl is one struct autofs_dev_ioctl with its trailing path.
type devIoctl struct{ buf []byte }

func newDevIoctl(ioctlFD int, path string) devIoctl {
	size := devIoctlSize
	if path != "" {
		size += len(path) + 1
	}
	d := devIoctl{buf: make([]byte, size)}
	ne := binary.NativeEndian
	ne.PutUint32(d.buf[0:], devIoctlMajor)
	ne.PutUint32(d.buf[4:], devIoctlMinor)
	ne.PutUint32(d.buf[8:], uint32(size))
	ne.PutUint32(d.buf[12:], uint32(int32(ioctlFD)))
	copy(d.buf[devIoctlSize:], path)
	return d
}

func (d devIoctl) ioctlFD() int         { return int(int32(binary.NativeEndian.Uint32(d.buf[12:]))) }
func (d devIoctl) arg1() uint32         { return binary.NativeEndian.Uint32(d.buf[16:]) }
func (d devIoctl) arg2() uint32         { return binary.NativeEndian.Uint32(d.buf[20:]) }
func (d devIoctl) setArg1(v uint32)     { binary.NativeEndian.PutUint32(d.buf[16:], v) }
func (d devIoctl) setArg2(v uint32)     { binary.NativeEndian.PutUint32(d.buf[20:], v) }
func (d devIoctl) setArg64(v uint64)    { binary.NativeEndian.PutUint64(d.buf[16:], v) }
func (d devIoctl) versionMajor() uint32 { return binary.NativeEndian.Uint32(d.buf[0:]) }
func (d devIoctl) versionMinor() uint32 { return binary.NativeEndian.Uint32(d.buf[4:]) }

// Control is an open /dev/autofs. Its methods are safe from any goroutine
// (each is one ioctl).
type Control struct{ f *os.File }

// OpenControl opens the autofs control device and checks that the kernel
// speaks its version of the interface.
func OpenControl() (*Control, error) {
	f, err := os.OpenFile(ControlPath, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("autofs control: %w (is the autofs4 module loaded?)", err)
	}
	c := &Control{f: f}
	d := newDevIoctl(-1, "")
	if err := c.do(cmdVersion, d); err != nil {
		f.Close()
		return nil, fmt.Errorf("autofs control: version: %w", err)
	}
	if d.versionMajor() != devIoctlMajor {
		f.Close()
		return nil, fmt.Errorf("autofs control: kernel interface %d.%d, Vigil speaks %d.%d", d.versionMajor(), d.versionMinor(), devIoctlMajor, devIoctlMinor)
	}
	return c, nil
}

// Close closes the control device.
func (c *Control) Close() error { return c.f.Close() }

func (c *Control) do(cmd uintptr, d devIoctl) error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	ctlErr := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, devIoctlNumber(cmd), uintptr(unsafe.Pointer(&d.buf[0])))
	})
	if ctlErr != nil {
		return ctlErr
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// OpenMount returns an ioctl descriptor for the autofs mount at path whose
// device number is devid: it works even when the mount is covered by
// another mount, which opening the directory would not (and it does not
// trigger the mount).
func (c *Control) OpenMount(path string, devid uint64) (int, error) {
	d := newDevIoctl(-1, path)
	d.setArg1(uint32(devid))
	if err := c.do(cmdOpenMount, d); err != nil {
		return -1, fmt.Errorf("autofs open mount %s: %w", path, err)
	}
	return d.ioctlFD(), nil
}

// CloseMount closes a descriptor from OpenMount.
func (c *Control) CloseMount(ioctlFD int) error {
	if err := c.do(cmdCloseMount, newDevIoctl(ioctlFD, "")); err != nil {
		return fmt.Errorf("autofs close mount: %w", err)
	}
	return nil
}

// ProtocolVersion gives the autofs protocol version and sub-version the
// mount negotiated (5 and 2..6 for the kernels Vigil runs on).
func (c *Control) ProtocolVersion(ioctlFD int) (major, minor uint32, err error) {
	d := newDevIoctl(ioctlFD, "")
	if err := c.do(cmdProtoVer, d); err != nil {
		return 0, 0, fmt.Errorf("autofs protocol version: %w", err)
	}
	major = d.arg1()
	d = newDevIoctl(ioctlFD, "")
	if err := c.do(cmdProtoSubVer, d); err != nil {
		return major, 0, fmt.Errorf("autofs protocol sub-version: %w", err)
	}
	return major, d.arg1(), nil
}

// Ready wakes the processes waiting on token: their walk goes on.
func (c *Control) Ready(ioctlFD int, token uint64) error {
	d := newDevIoctl(ioctlFD, "")
	d.setArg1(uint32(token))
	if err := c.do(cmdReady, d); err != nil {
		return fmt.Errorf("autofs ready %d: %w", token, err)
	}
	return nil
}

// Fail wakes the processes waiting on token with an error: their access
// fails with errno.
func (c *Control) Fail(ioctlFD int, token uint64, errno unix.Errno) error {
	d := newDevIoctl(ioctlFD, "")
	d.setArg1(uint32(token))
	d.setArg2(uint32(-int32(errno)))
	if err := c.do(cmdFail, d); err != nil {
		return fmt.Errorf("autofs fail %d: %w", token, err)
	}
	return nil
}

// SetPipeFD gives a catatonic mount a new request pipe and makes the
// caller's process group its daemon: how a restarted daemon takes a mount
// over.
func (c *Control) SetPipeFD(ioctlFD, pipeFD int) error {
	d := newDevIoctl(ioctlFD, "")
	d.setArg1(uint32(int32(pipeFD)))
	if err := c.do(cmdSetPipeFD, d); err != nil {
		return fmt.Errorf("autofs set pipe: %w", err)
	}
	return nil
}

// Catatonic stops the mount's protocol: every waiting process is woken
// with ENOENT and later accesses fail without asking anyone.
func (c *Control) Catatonic(ioctlFD int) error {
	if err := c.do(cmdCatatonic, newDevIoctl(ioctlFD, "")); err != nil {
		return fmt.Errorf("autofs catatonic: %w", err)
	}
	return nil
}

// SetTimeout sets the idle time after which EXPIRE considers the mount
// expirable; zero means never. The kernel counts whole seconds.
func (c *Control) SetTimeout(ioctlFD int, timeout time.Duration) error {
	d := newDevIoctl(ioctlFD, "")
	secs := uint64(0)
	if timeout > 0 {
		secs = uint64((timeout + time.Second - 1) / time.Second)
	}
	d.setArg64(secs)
	if err := c.do(cmdTimeout, d); err != nil {
		return fmt.Errorf("autofs timeout: %w", err)
	}
	return nil
}

// Requester gives the uid and gid of the process that triggered the
// request for path (the mount must be pending).
func (c *Control) Requester(ioctlFD int, path string) (uid, gid uint32, err error) {
	d := newDevIoctl(ioctlFD, path)
	if err := c.do(cmdRequester, d); err != nil {
		return 0, 0, fmt.Errorf("autofs requester %s: %w", path, err)
	}
	return d.arg1(), d.arg2(), nil
}

// Expire asks the kernel to expire the mount if it is idle. It blocks:
// when the mount is expirable the kernel sends an expire request through
// the pipe and returns only when that request was answered. It reports
// whether something was expired; EAGAIN (nothing to expire) is not an
// error.
func (c *Control) Expire(ioctlFD int, how uint32) (bool, error) {
	d := newDevIoctl(ioctlFD, "")
	d.setArg1(how)
	err := c.do(cmdExpire, d)
	switch err {
	case nil:
		return true, nil
	case unix.EAGAIN:
		return false, nil
	}
	return false, fmt.Errorf("autofs expire: %w", err)
}

// AskUmount reports whether the autofs mount itself could be unmounted now
// (nothing is mounted on it and nobody uses it).
func (c *Control) AskUmount(ioctlFD int) (bool, error) {
	d := newDevIoctl(ioctlFD, "")
	if err := c.do(cmdAskUmount, d); err != nil {
		return false, fmt.Errorf("autofs ask umount: %w", err)
	}
	return d.arg1() != 0, nil
}

// MountPointInfo is what IsMountPoint learns about a path.
type MountPointInfo struct {
	// MountPoint is true when something is mounted at the path.
	MountPoint bool
	// DevID and Magic describe the topmost mount there.
	DevID uint32
	Magic uint32
}

// IsMountPoint asks the kernel about path without triggering any autofs
// mount on the way (the control device walks in daemon mode).
func (c *Control) IsMountPoint(path string) (MountPointInfo, error) {
	d := newDevIoctl(-1, path)
	rc, err := c.f.SyscallConn()
	if err != nil {
		return MountPointInfo{}, err
	}
	var r1 uintptr
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		r1, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, devIoctlNumber(cmdIsMountPoint), uintptr(unsafe.Pointer(&d.buf[0])))
	}); err != nil {
		return MountPointInfo{}, err
	}
	if errno != 0 {
		return MountPointInfo{}, fmt.Errorf("autofs is-mount-point %s: %w", path, errno)
	}
	return MountPointInfo{MountPoint: r1 != 0, DevID: d.arg1(), Magic: d.arg2()}, nil
}
