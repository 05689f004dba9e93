package calendar

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// zoneinfoDir is where systemd (and glibc) look for zones named in
// expressions.
const zoneinfoDir = "/usr/share/zoneinfo"

// loadZone loads the zone name names if systemd would accept it as one
// (verify_timezone: letters, digits, '-', '_', '+' and single '/' between
// parts; a regular file starting with the TZif magic).
func loadZone(name string) (*time.Location, bool) {
	if !validZoneName(name) {
		return nil, false
	}
	path := filepath.Join(zoneinfoDir, name)
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil, false
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, []byte("TZif")) {
		return nil, false
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		return nil, false
	}
	return loc, true
}

func validZoneName(name string) bool {
	if name == "" || name[0] == '/' || len(name) >= 4096 {
		return false
	}
	slash := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			if slash {
				return false
			}
			slash = true
			continue
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_', c == '+':
		default:
			return false
		}
		slash = false
	}
	return !slash
}

// zoneAbbreviations returns the local zone's standard and daylight
// abbreviations as glibc's tzname[0] and tzname[1] hold them (the same
// name twice for a zone without daylight saving time), with their offsets.
func zoneAbbreviations(local *time.Location) (names [2]string, offsets [2]int) {
	year := time.Now().Year()
	jan := time.Date(year, time.January, 1, 12, 0, 0, 0, local)
	jul := time.Date(year, time.July, 1, 12, 0, 0, 0, local)
	std, dst := jan, jul
	if jan.IsDST() {
		std, dst = jul, jan
	}
	names[0], offsets[0] = std.Zone()
	names[1], offsets[1] = dst.Zone()
	if !dst.IsDST() {
		names[1], offsets[1] = names[0], offsets[0]
	}
	return names, offsets
}

// localAbbreviation reports whether expr ends in " NAME" where NAME is one
// of the local zone's abbreviations (case-insensitively), and which; name
// is the abbreviation as the zone spells it.
func localAbbreviation(expr string, local *time.Location) (name string, dst int, ok bool) {
	if local == nil {
		return "", 0, false
	}
	names, _ := zoneAbbreviations(local)
	for j, n := range names {
		if n == "" || len(expr) <= len(n) {
			continue
		}
		if strings.EqualFold(expr[len(expr)-len(n):], n) && expr[len(expr)-len(n)-1] == ' ' {
			return n, j, true
		}
	}
	return "", 0, false
}
