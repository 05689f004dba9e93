package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A record on disk is one line: "TIME\tSTREAM\tPID\tTEXT\n", TIME in UTC
// with nanoseconds at fixed width (so files sort and grep well). TEXT is the
// last field and may hold tabs; it never holds a newline.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func appendRecord(b []byte, l Line) []byte {
	b = l.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '\t')
	b = append(b, sanitizeStream(l.Stream)...)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(l.PID), 10)
	b = append(b, '\t')
	b = append(b, l.Text...)
	return append(b, '\n')
}

func sanitizeStream(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return '_'
		}
		return r
	}, s)
}

// parseRecord reads one record (without its newline). Files on disk are
// outside input: a record that does not parse is reported as not ok.
func parseRecord(rec []byte, unit string) (Line, bool) {
	fields := bytes.SplitN(rec, []byte{'\t'}, 4)
	if len(fields) != 4 {
		return Line{}, false
	}
	t, err := time.Parse(timeLayout, string(fields[0]))
	if err != nil {
		return Line{}, false
	}
	pid, err := strconv.Atoi(string(fields[2]))
	if err != nil || pid < 0 {
		return Line{}, false
	}
	return Line{Time: t, Unit: unit, Stream: string(fields[1]), PID: pid, Text: string(fields[3])}, true
}

// writeLocked appends lines to unit's file, rotating at record boundaries,
// and returns how many lines (a prefix of lines) reached the file.
func (s *Store) writeLocked(unit string, u *unitLog, lines []Line) int {
	if !s.diskOn {
		return 0
	}
	if u.file == nil {
		path := filepath.Join(s.dir, fileName(unit))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			s.failDiskLocked(fmt.Errorf("open %s: %w", path, err))
			return 0
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			s.failDiskLocked(fmt.Errorf("stat %s: %w", path, err))
			return 0
		}
		u.file, u.size = f, fi.Size()
	}
	chunk := s.scratch[:0]
	defer func() { s.scratch = chunk[:0] }()
	chunkFirst := 0 // index in lines of the chunk's first record
	for i, l := range lines {
		before := len(chunk)
		chunk = appendRecord(chunk, l)
		if u.size+int64(len(chunk)) > s.opts.MaxFileSize && u.size+int64(before) > 0 {
			// The record does not fit: write what came before it, rotate,
			// and start the new file with it.
			if before > 0 {
				if n, ok := s.writeChunkLocked(unit, u, chunk[:before]); !ok {
					return chunkFirst + n
				}
			}
			if !s.rotateLocked(unit, u) {
				return i
			}
			chunk = append(chunk[:0], chunk[before:]...)
			chunkFirst = i
		}
	}
	if len(chunk) == 0 {
		return len(lines)
	}
	n, _ := s.writeChunkLocked(unit, u, chunk)
	return chunkFirst + n
}

// writeChunkLocked writes whole records and returns how many reached the
// file. After a failed or short write it cuts the file back to its last
// complete record and turns the disk off.
func (s *Store) writeChunkLocked(unit string, u *unitLog, chunk []byte) (int, bool) {
	n, err := u.file.Write(chunk)
	if err == nil {
		u.size += int64(n)
		return bytes.Count(chunk, []byte{'\n'}), true
	}
	complete := bytes.LastIndexByte(chunk[:n], '\n') + 1
	if complete < n {
		u.file.Truncate(u.size + int64(complete)) // best effort: no half record on disk
	}
	u.size += int64(complete)
	s.stats.DiskErrors++
	s.failDiskLocked(fmt.Errorf("write %s: %w", filepath.Join(s.dir, fileName(unit)), err))
	return bytes.Count(chunk[:complete], []byte{'\n'}), false
}

// rotateLocked renames UNIT.log to UNIT.log.1 (shifting older ones up and
// dropping the oldest) and opens a new UNIT.log.
func (s *Store) rotateLocked(unit string, u *unitLog) bool {
	base := filepath.Join(s.dir, fileName(unit))
	u.file.Close()
	u.file = nil
	var err error
	if s.opts.KeepFiles == 0 {
		err = os.Remove(base)
	} else {
		for i := s.opts.KeepFiles - 1; i >= 1; i-- {
			old := base + "." + strconv.Itoa(i)
			if e := os.Rename(old, base+"."+strconv.Itoa(i+1)); e != nil && !errors.Is(e, os.ErrNotExist) {
				err = e
			}
		}
		if e := os.Rename(base, base+".1"); e != nil {
			err = e
		}
	}
	if err != nil {
		s.stats.DiskErrors++
		s.failDiskLocked(fmt.Errorf("rotate %s: %w", base, err))
		return false
	}
	f, err := os.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		s.stats.DiskErrors++
		s.failDiskLocked(fmt.Errorf("open %s: %w", base, err))
		return false
	}
	u.file, u.size = f, 0
	return true
}

// failDiskLocked turns disk writing off, closes the files and warns once.
func (s *Store) failDiskLocked(err error) {
	s.diskOn = false
	for _, u := range s.units {
		if u.file != nil {
			u.file.Close()
			u.file = nil
		}
	}
	if !s.warned {
		s.warned = true
		if s.opts.Warn != nil {
			s.opts.Warn(fmt.Errorf("unit logs kept in memory only: %w", err))
		}
	}
}

// readDisk reads all of unit's records, oldest first: the rotated files
// from the highest number down, then the current file. Missing files and
// records that do not parse are skipped.
func (s *Store) readDisk(unit string) []Line {
	base := filepath.Join(s.dir, fileName(unit))
	var lines []Line
	for i := s.opts.KeepFiles; i >= 0; i-- {
		path := base
		if i > 0 {
			path += "." + strconv.Itoa(i)
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		lines = readRecords(f, unit, lines)
		f.Close()
	}
	return lines
}

func readRecords(r io.Reader, unit string, lines []Line) []Line {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		rec, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Not written by us: skip the rest of this over-long line.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return lines
			}
			continue
		}
		if len(rec) > 0 && rec[len(rec)-1] == '\n' {
			if l, ok := parseRecord(rec[:len(rec)-1], unit); ok {
				lines = append(lines, l)
			}
		}
		if err != nil {
			return lines
		}
	}
}

// diskUnits lists the units that have a current log file in dir.
func (s *Store) diskUnits() []string {
	if s.dir == "" {
		return nil
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	var units []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if unit, ok := unitOfFile(e.Name()); ok {
			units = append(units, unit)
		}
	}
	return units
}
