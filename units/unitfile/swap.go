package unitfile

import "fmt"

// finalizeSwapWhat derives a swap unit's what from its name
// (dev-vdc.swap is /dev/vdc), or checks that they agree, as systemd does.
func (d *unitDecoder) finalizeSwapWhat(s *SwapSection) {
	if d.unit.ID.IsTemplate || d.unit.ID.IsInstance() {
		d.keyProblem(SeverityError, "swap", "", ".swap units cannot be templates or instances")
		return
	}
	fromName, err := UnescapePath(d.unit.ID.Prefix)
	if err != nil {
		d.keyProblem(SeverityError, "swap", "", fmt.Sprintf("unit name %q is not an escaped path: %v", d.unit.Name, err))
		return
	}
	if s.What == "" {
		s.What = fromName
		return
	}
	expected, err := EscapePath(s.What)
	if err != nil {
		d.keyProblem(SeverityError, "swap", "what", err.Error())
		return
	}
	if expected != d.unit.ID.Prefix {
		d.keyProblem(SeverityError, "swap", "what", fmt.Sprintf("%q does not match the unit name: its unit is %s.swap", s.What, expected))
	}
}
