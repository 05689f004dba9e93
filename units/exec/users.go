package exec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// The account databases. They are read directly (no NSS, no cgo) so a static
// PID 1 resolves names the same way everywhere.
const (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// ErrUnknownUser and ErrUnknownGroup are wrapped by lookups of names that are
// not in the account database.
var (
	ErrUnknownUser  = errors.New("unknown user")
	ErrUnknownGroup = errors.New("unknown group")
)

// User is one entry of /etc/passwd.
type User struct {
	Name     string
	UID, GID uint32
	Home     string
	Shell    string
}

// Group is one entry of /etc/group.
type Group struct {
	Name    string
	GID     uint32
	Members []string
}

// LookupUser resolves a user name (or a decimal uid) from /etc/passwd. A
// numeric uid that has no entry resolves to itself with gid = uid and home /,
// as systemd does for numeric User= settings.
func LookupUser(name string) (uid, gid uint32, home, shell string, err error) {
	u, err := lookupUserIn(passwdFile, name)
	if err != nil {
		return 0, 0, "", "", err
	}
	return u.UID, u.GID, u.Home, u.Shell, nil
}

// LookupGroup resolves a group name (or a decimal gid) from /etc/group.
func LookupGroup(name string) (gid uint32, err error) {
	g, err := lookupGroupIn(groupFile, name)
	if err != nil {
		return 0, err
	}
	return g.GID, nil
}

// MemberGroups lists the gids of the groups in /etc/group that name user as a
// member: the supplementary groups initgroups(3) would set.
func MemberGroups(user string) ([]uint32, error) {
	return memberGroupsIn(groupFile, user)
}

func lookupUserIn(path, name string) (User, error) {
	f, err := os.Open(path)
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", name, err)
	}
	defer f.Close()
	users, err := ParsePasswd(f)
	if err != nil {
		return User{}, fmt.Errorf("user %s: read %s: %w", name, path, err)
	}
	num, numErr := parseID(name)
	for _, u := range users {
		if u.Name == name {
			return u, nil
		}
	}
	if numErr == nil {
		for _, u := range users {
			if u.UID == num {
				return u, nil
			}
		}
		return User{Name: name, UID: num, GID: num, Home: "/"}, nil
	}
	return User{}, fmt.Errorf("user %s: %w", name, ErrUnknownUser)
}

func lookupGroupIn(path, name string) (Group, error) {
	f, err := os.Open(path)
	if err != nil {
		return Group{}, fmt.Errorf("group %s: %w", name, err)
	}
	defer f.Close()
	groups, err := ParseGroup(f)
	if err != nil {
		return Group{}, fmt.Errorf("group %s: read %s: %w", name, path, err)
	}
	for _, g := range groups {
		if g.Name == name {
			return g, nil
		}
	}
	if num, err := parseID(name); err == nil {
		for _, g := range groups {
			if g.GID == num {
				return g, nil
			}
		}
		return Group{Name: name, GID: num}, nil
	}
	return Group{}, fmt.Errorf("group %s: %w", name, ErrUnknownGroup)
}

func memberGroupsIn(path, user string) ([]uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("groups of %s: %w", user, err)
	}
	defer f.Close()
	groups, err := ParseGroup(f)
	if err != nil {
		return nil, fmt.Errorf("groups of %s: read %s: %w", user, path, err)
	}
	var gids []uint32
	for _, g := range groups {
		for _, m := range g.Members {
			if m == user {
				gids = append(gids, g.GID)
				break
			}
		}
	}
	return gids, nil
}

// parseID accepts a decimal id below 2^32-1 ((uid_t)-1 is "no change").
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, err
	}
	if n == 1<<32-1 {
		return 0, fmt.Errorf("id %s is reserved", s)
	}
	return uint32(n), nil
}

// ParsePasswd reads passwd(5) lines. Malformed lines (wrong field count, bad
// numbers), comments and NIS "+"/"-" entries are skipped, as glibc does; only
// a read error is an error.
func ParsePasswd(r io.Reader) ([]User, error) {
	var users []User
	err := eachLine(r, func(line string) {
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] == "" {
			return
		}
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		users = append(users, User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]})
	})
	return users, err
}

// ParseGroup reads group(5) lines, skipping malformed ones like ParsePasswd.
func ParseGroup(r io.Reader) ([]Group, error) {
	var groups []Group
	err := eachLine(r, func(line string) {
		f := strings.Split(line, ":")
		if len(f) != 4 || f[0] == "" {
			return
		}
		gid, err := parseID(f[2])
		if err != nil {
			return
		}
		g := Group{Name: f[0], GID: gid}
		if f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.Members = append(g.Members, m)
				}
			}
		}
		groups = append(groups, g)
	})
	return groups, err
}

func eachLine(r io.Reader, fn func(string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fn(line)
	}
	return sc.Err()
}
