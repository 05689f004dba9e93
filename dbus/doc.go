// Package dbus serves systemd's D-Bus API, org.freedesktop.systemd1, over
// Vigil's manager, so that systemctl, busctl, gdbus and other D-Bus clients
// work unchanged. It owns the protocol side only: the peer-to-peer listener
// (/run/systemd/private for PID 1) with the server half of SASL EXTERNAL,
// the connection to the system bus under the name org.freedesktop.systemd1,
// the object tree (Manager, units, jobs) with its properties, introspection
// and signals. It owns no state of units: everything it shows comes from a
// Manager (the consumer interface in manager.go); adapter.go (with
// adapter_scope.go) implements it over vigil/units, and they are the only
// files that import that package.
//
// # Route through godbus
//
// godbus/dbus/v5 has no server side, and its Conn only starts reading
// inside its client-side Auth. Instead of driving Conn with a scripted
// handshake or an unexported read loop, this package uses godbus for the
// wire format only (DecodeMessage, Message.EncodeTo, Variant, Signature)
// and dispatches messages itself. That was chosen deliberately:
//
//   - the handshake is ours anyway (systemctl's pipelined "\0AUTH
//     EXTERNAL\r\nDATA\r\n..." form must be answered with a DATA challenge,
//     and not one byte after BEGIN may be consumed);
//   - Conn.Emit writes to the peer and can block behind a slow client,
//     while PID 1 must never block: here every connection has its own
//     bounded queue and signals that do not fit are dropped and counted;
//   - systemctl needs Properties.GetAll("") merged over all interfaces and
//     property reads on paths of units that do not exist, which godbus's
//     prop package and export tables do not do;
//   - the same dispatcher serves peer-to-peer connections and the system
//     bus, where the caller's uid comes from GetConnectionUnixUser.
//
// godbus assigns serials only inside Conn; we encode with serial 0 and
// write the serial into the fixed header (bytes 8..11) ourselves.
//
// # Access
//
// Every local user may read; only uid 0 may change state. On a
// peer-to-peer connection the uid is the socket's SO_PEERCRED; on the bus
// it is asked of the bus. Others get org.freedesktop.DBus.Error.AccessDenied.
package dbus
