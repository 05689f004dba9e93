package early

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FallbackHostname is set when /etc/hostname gives none and the kernel has
// none either.
const FallbackHostname = "localhost"

// SetHostname sets the kernel host name (of the calling process's UTS
// namespace) from root/etc/hostname: the first line that is neither empty
// nor a '#' comment, if it is a valid host name. Without a valid name the
// kernel's name is kept, unless it is unset ("(none)" or empty), in which
// case FallbackHostname is set. It returns the host name now in effect; the
// error reports an unreadable or invalid file and a failed sethostname.
func SetHostname(root string) (string, error) {
	var fileErr error
	name, err := readHostnameFile(filepath.Join(root, "etc/hostname"))
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		fileErr = err
	case err == nil && name != "" && !ValidHostname(name):
		fileErr = fmt.Errorf("host name %q in %s is not valid", name, filepath.Join(root, "etc/hostname"))
		name = ""
	}
	if name == "" {
		current, err := os.Hostname()
		if err == nil && current != "" && current != "(none)" {
			return current, fileErr
		}
		name = FallbackHostname
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return "", errors.Join(fileErr, fmt.Errorf("set host name %q: %w", name, err))
	}
	return name, fileErr
}

func readHostnameFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read host name: %w", err)
	}
	defer f.Close()
	return parseHostname(f)
}

// parseHostname returns the first line that is not empty or a comment.
func parseHostname(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && line[0] != '#' {
			return line, nil
		}
	}
	return "", sc.Err()
}

// ValidHostname reports whether name is a valid host name as systemd's
// hostname_is_valid sees it: 1 to 64 bytes of ASCII letters, digits, '-'
// and '.', not starting with '.' or '-', without empty labels, and
// optionally ending with one '.'.
func ValidHostname(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 64 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// LoopbackUp brings the "lo" interface of the calling thread's network
// namespace up; the kernel then configures 127.0.0.1 and ::1 on it.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: get flags: %w", err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: set flags: %w", err)
	}
	return nil
}

// Uptime returns the time since boot including suspend (CLOCK_BOOTTIME),
// the clock the kernel's log and the console lines use.
func Uptime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
