package pid1

import (
	"strconv"
	"strings"
)

func atoi(s string) int { n, _ := strconv.Atoi(strings.TrimSpace(s)); return n }
func itoa(n int) string { return strconv.Itoa(n) }
