// Package uevent is the observer's kernel device source and what Vigil does
// with device events instead of udev: it owns the NETLINK_KOBJECT_UEVENT
// listener, the parser of kernel (and libudev) uevent messages, coldplug
// (synthesising "add" for every device already in /sys), module
// autoloading from MODALIAS, and the systemd-compatible names of device
// units.
//
// Device nodes themselves (the /dev/disk links, ownership and mode rules)
// live in the sub-package devnode, and file system identification in
// blkid; both take a *Uevent so they can be driven by this package's events.
//
// The package imports nothing of Vigil but the observer core: the caller
// wires in module loading (Autoload takes the resolve and load functions
// of init/kmod's Loader) and the supervisor's device units (UnitNames).
package uevent
