package uevent

import (
	"errors"
	"fmt"
)

// Autoload loads the driver modules of a newly added device, as udev's
// 80-drivers.rules does with kmod: for an "add" event that carries a
// MODALIAS and whose device has no driver bound yet (coldplug events of
// bound devices carry DRIVER), it resolves the alias and loads every
// module it stands for. resolve and load are init/kmod's Loader.Resolve
// and Loader.Load.
//
// It returns the modules it loaded successfully. Most MODALIAS values have
// no module at all: then resolve's error is returned wrapped, and callers
// check it with errors.Is(err, kmod.ErrNotFound). Events that need no
// module return nil, nil.
func Autoload(ev *Uevent, resolve func(alias string) ([]string, error), load func(name string) error) ([]string, error) {
	if ev.Action != "add" || ev.Modalias == "" || ev.Env["DRIVER"] != "" {
		return nil, nil
	}
	modules, err := resolve(ev.Modalias)
	if err != nil {
		return nil, fmt.Errorf("autoload for %s: %w", ev.DevPath, err)
	}
	var loaded []string
	var errs []error
	for _, m := range modules {
		if err := load(m); err != nil {
			errs = append(errs, fmt.Errorf("autoload %s for %s: %w", m, ev.DevPath, err))
			continue
		}
		loaded = append(loaded, m)
	}
	return loaded, errors.Join(errs...)
}
