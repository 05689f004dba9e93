package early

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ConsolePath is the kernel's console device.
const ConsolePath = "/dev/console"

// SetupConsole makes /dev/console the controlling terminal and stdin,
// stdout and stderr of the calling process, with sane terminal settings.
func SetupConsole() error {
	return SetupTerminal(ConsolePath)
}

// SetupTerminal makes the terminal at path the controlling terminal of the
// calling process and its fds 0, 1 and 2. The process becomes a session
// leader first (setsid; EPERM means it is one already). The terminal is
// opened with O_NOCTTY and then taken with TIOCSCTTY (stealing it from
// another session if needed, as systemd does for the console).
func SetupTerminal(path string) error {
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("setsid: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open console %s: %w", path, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("make %s the controlling terminal: %w", path, err)
	}
	var errs []error
	if err := SaneTerminal(fd); err != nil {
		errs = append(errs, err)
	}
	for target := 0; target <= 2; target++ {
		if err := unix.Dup3(fd, target, 0); err != nil {
			errs = append(errs, fmt.Errorf("dup console to fd %d: %w", target, err))
		}
	}
	unix.Close(fd)
	return errors.Join(errs...)
}

// SaneTerminal resets a terminal's line discipline settings to what
// systemd's reset_terminal_fd sets: canonical mode with echo, CR/NL
// translation, UTF-8, and the usual control characters.
func SaneTerminal(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get terminal attributes: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.IUCLC
	t.Iflag |= unix.ICRNL | unix.IMAXBEL | unix.IUTF8
	t.Oflag |= unix.ONLCR | unix.OPOST
	t.Cflag |= unix.CREAD
	t.Lflag = unix.ISIG | unix.ICANON | unix.IEXTEN | unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHOCTL | unix.ECHOKE
	t.Cc[unix.VINTR] = 0o3
	t.Cc[unix.VQUIT] = 0o34
	t.Cc[unix.VERASE] = 0o177
	t.Cc[unix.VKILL] = 0o25
	t.Cc[unix.VEOF] = 0o4
	t.Cc[unix.VSTART] = 0o21
	t.Cc[unix.VSTOP] = 0o23
	t.Cc[unix.VSUSP] = 0o32
	t.Cc[unix.VLNEXT] = 0o26
	t.Cc[unix.VWERASE] = 0o27
	t.Cc[unix.VREPRINT] = 0o22
	t.Cc[unix.VEOL] = 0
	t.Cc[unix.VEOL2] = 0
	t.Cc[unix.VTIME] = 0
	t.Cc[unix.VMIN] = 1
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set terminal attributes: %w", err)
	}
	return nil
}
