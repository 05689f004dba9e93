// Package pid1 is the wiring of Vigil: it builds the observer loop, the
// reaper, the unit manager, the control socket and the log store, and runs
// them either as PID 1 (with early boot and the final shutdown, which only
// PID 1 does) or as an ordinary manager process for tests and users.
//
// Its sub-packages hold the PID 1 duties themselves (early mounts, kernel
// modules, the kernel command line, shutdown, the emergency shell), each
// testable without being PID 1.
//
// PID 1 never exits, with one exception: as PID 1 of a container
// (early.DetectContainer) Vigil exits with status 0 after its ordered
// shutdown, because a container ends when its PID 1 does; there it neither
// unmounts nor calls reboot(2).
package pid1
