// Package logs captures and keeps the output of units: every line a unit's
// processes write to a capture pipe, and every line the manager writes about
// a unit, timestamped and kept in a bounded in-memory ring per unit and in a
// size-rotated file per unit on disk (DIR/UNIT.log, DIR/UNIT.log.1, ...).
//
// A Store owns all of it behind one mutex; capture goroutines, followers and
// the manager only call its methods. The rules that keep PID 1 safe:
//
//   - capture never waits for a reader: a follower with a full channel loses
//     lines (counted, and announced by a marker line once it catches up);
//   - the disk is optional: the first failed write (read-only /var, full
//     disk) turns the store into a ring-only store with one warning, and
//     nothing blocks or fails because of it;
//   - every line is bounded: a line without a newline is cut at
//     Options.MaxLineLength, and a partial last line is kept at EOF. Bytes are
//     kept as written, invalid UTF-8 included.
//
// Disk writes are flushed once per read from the pipe: a burst of output
// costs one write(2) per read, a quiet service one per line, and nothing is
// lost if the manager dies. BenchmarkCapture measures the throughput.
package logs
