package early

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// randomSeedFiles are the seed files SeedRandom uses, relative to root.
func randomSeedFiles() []string {
	return []string{"var/lib/systemd/random-seed", "var/lib/vigil/random-seed"}
}

const (
	// maxSeedSize bounds what is read from a seed file.
	maxSeedSize = 4096
	// defaultSeedSize is written when the old seed was empty; systemd
	// uses the pool size, 512 bytes.
	defaultSeedSize = 512
)

// SeedRandom feeds each existing seed file (root/var/lib/systemd/random-seed,
// root/var/lib/vigil/random-seed) into root/dev/urandom, without crediting
// entropy (a seed may have been copied to other machines), and replaces it
// with fresh random bytes so the same seed is never used twice. Missing
// seed files are not an error. It returns how many seed files were used.
func SeedRandom(root string) (int, error) {
	var errs []error
	used := 0
	for _, rel := range randomSeedFiles() {
		path := filepath.Join(root, rel)
		seed, err := readSeed(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if len(seed) > 0 {
			if err := writeURandom(filepath.Join(root, "dev/urandom"), seed); err != nil {
				errs = append(errs, err)
				continue
			}
			used++
		}
		size := len(seed)
		if size == 0 {
			size = defaultSeedSize
		}
		if err := refreshSeed(path, size); err != nil {
			errs = append(errs, err)
		}
	}
	return used, errors.Join(errs...)
}

func readSeed(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read random seed: %w", err)
	}
	defer f.Close()
	seed, err := io.ReadAll(io.LimitReader(f, maxSeedSize))
	if err != nil {
		return nil, fmt.Errorf("read random seed %s: %w", path, err)
	}
	return seed, nil
}

func writeURandom(path string, seed []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("seed random pool: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(seed); err != nil {
		return fmt.Errorf("seed random pool through %s: %w", path, err)
	}
	return nil
}

// refreshSeed replaces the seed file with size new random bytes.
func refreshSeed(path string, size int) error {
	fresh := make([]byte, size)
	for filled := 0; filled < size; {
		n, err := unix.Getrandom(fresh[filled:], 0)
		if err != nil {
			return fmt.Errorf("refresh random seed %s: %w", path, err)
		}
		filled += n
	}
	if err := writeFileAtomic(path, fresh, 0o600); err != nil {
		return fmt.Errorf("refresh random seed %s: %w", path, err)
	}
	return nil
}
