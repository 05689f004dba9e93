package audit

import "vigil/observer/fanotify"

// FanotifyMarker places the auditor's marks on a fanotify source.
type FanotifyMarker struct{ Source *fanotify.Source }

// Mark implements Marker: tree marks become MarkTree (the source then
// sees every access of that kind on the whole mount and filters by path in
// its reader: the price of a "**" rule or a rule without a path).
func (m FanotifyMarker) Mark(path string, access Access, tree bool) (func(), error) {
	var mask fanotify.Mask
	if access&AccessOpen != 0 {
		mask |= fanotify.Open
	}
	if access&AccessExec != 0 {
		mask |= fanotify.Exec
	}
	mark := m.Source.Mark
	if tree {
		mark = m.Source.MarkTree
	}
	id, err := mark(path, mask)
	if err != nil {
		return nil, err
	}
	return func() { m.Source.Unmark(id) }, nil
}
