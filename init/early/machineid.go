package early

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseMachineID returns the ID in the text of a machine-id file: 32
// lowercase hex digits, not all zero, optionally followed by a newline.
func ParseMachineID(data string) (string, bool) {
	id := strings.TrimSuffix(data, "\n")
	if len(id) != 32 || id == strings.Repeat("0", 32) {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return id, true
}

// parseProductUUID turns a DMI product UUID into a machine ID; UUIDs that
// firmware uses as "unset" (all zeros, all ones) are refused.
func parseProductUUID(data string) (string, bool) {
	hexID := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(data), "-", ""))
	if len(hexID) != 32 {
		return "", false
	}
	if _, err := hex.DecodeString(hexID); err != nil {
		return "", false
	}
	if hexID == strings.Repeat("0", 32) || hexID == strings.Repeat("f", 32) {
		return "", false
	}
	return hexID, true
}

// randomMachineID makes a random ID formatted as a version 4 UUID, as
// systemd does.
func randomMachineID() (string, error) {
	var b [16]byte
	if err := bootRandom(b[:]); err != nil {
		return "", fmt.Errorf("random machine ID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:]), nil
}

// bootRandom fills b without waiting for the kernel's random pool to be
// initialized: an ID needs to be unique, not secret, and crypto/rand's
// getrandom blocks until the pool is ready, which under QEMU TCG is
// seconds after PID 1 starts (measured: 1.4 s, the whole rest of early
// boot waiting behind it). GRND_INSECURE (Linux 5.6) is what systemd uses
// for IDs; older kernels fall back to crypto/rand.
func bootRandom(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Getrandom(b, unix.GRND_INSECURE)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			_, err = io.ReadFull(rand.Reader, b)
			return err
		}
		b = b[n:]
	}
	return nil
}

// MachineID returns the machine ID from root/etc/machine-id. If the file is
// missing, empty or invalid, an ID is made: from the DMI product UUID when
// running in a VM (not in a container, where it would be the host's), else
// at random; it is written to root/etc/machine-id, or, when /etc is
// read-only, to root/run/machine-id and bind-mounted over
// root/etc/machine-id as systemd does. The ID is returned even when it
// could not be stored (with the error).
func MachineID(root string) (string, error) {
	_, inContainer := DetectContainer()
	return machineID(root, !inContainer)
}

func machineID(root string, useProductUUID bool) (string, error) {
	etcPath := filepath.Join(root, "etc/machine-id")
	data, err := os.ReadFile(etcPath)
	if err == nil {
		if id, ok := ParseMachineID(string(data)); ok {
			return id, nil
		}
	}
	id := ""
	if useProductUUID {
		if uuid, err := os.ReadFile(filepath.Join(root, "sys/class/dmi/id/product_uuid")); err == nil {
			id, _ = parseProductUUID(string(uuid))
		}
	}
	if id == "" {
		if id, err = randomMachineID(); err != nil {
			return "", err
		}
	}
	content := []byte(id + "\n")
	werr := writeFileAtomic(etcPath, content, 0o444)
	if werr == nil {
		return id, nil
	}
	if !errors.Is(werr, unix.EROFS) && !errors.Is(werr, unix.EACCES) && !errors.Is(werr, unix.EPERM) {
		return id, fmt.Errorf("write machine ID: %w", werr)
	}
	// Read-only /etc: keep the ID in /run and show it at /etc/machine-id.
	runPath := filepath.Join(root, "run/machine-id")
	if err := os.MkdirAll(filepath.Dir(runPath), 0o755); err != nil {
		return id, fmt.Errorf("write machine ID: %w; %v", werr, err)
	}
	if err := writeFileAtomic(runPath, content, 0o444); err != nil {
		return id, fmt.Errorf("write machine ID: %w; %v", werr, err)
	}
	if _, err := os.Stat(etcPath); err != nil {
		return id, fmt.Errorf("machine ID kept in %s only: %s missing on read-only /etc: %w", runPath, etcPath, err)
	}
	if err := unix.Mount(runPath, etcPath, "", unix.MS_BIND, ""); err != nil {
		return id, fmt.Errorf("bind %s over %s: %w", runPath, etcPath, err)
	}
	// Best effort: a read-only bind, like systemd's.
	_ = unix.Mount("", etcPath, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	return id, nil
}

// writeFileAtomic replaces path with data through a temporary file and
// rename, so a crash never leaves half a file. Where rename cannot work
// (path is a mount point), it writes in place.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmpName, mode)
	}
	if werr == nil {
		werr = os.Rename(tmpName, path)
		if errors.Is(werr, unix.EBUSY) {
			werr = os.WriteFile(path, data, mode)
		}
	}
	if werr != nil {
		os.Remove(tmpName)
	}
	return werr
}
