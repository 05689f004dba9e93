package units

// ActiveState is systemd's high-level unit state.
type ActiveState string

// The active states, as systemd names them.
const (
	StateInactive     ActiveState = "inactive"
	StateActive       ActiveState = "active"
	StateReloading    ActiveState = "reloading"
	StateFailed       ActiveState = "failed"
	StateActivating   ActiveState = "activating"
	StateDeactivating ActiveState = "deactivating"
)

// IsActiveOrReloading is true while the unit counts as up.
func (s ActiveState) IsActiveOrReloading() bool { return s == StateActive || s == StateReloading }

// IsInactiveOrFailed is true while the unit counts as down.
func (s ActiveState) IsInactiveOrFailed() bool { return s == StateInactive || s == StateFailed }

// Load states.
const (
	LoadLoaded     = "loaded"
	LoadNotFound   = "not-found"
	LoadBadSetting = "bad-setting"
	LoadError      = "error"
	LoadMasked     = "masked"
)

// DepKind is one kind of dependency between units.
type DepKind int

// The dependency kinds. Each forward kind has an inverse the manager
// maintains so that both directions can be walked.
const (
	Requires DepKind = iota
	Requisite
	Wants
	BindsTo
	PartOf
	Conflicts
	After
	Before
	OnFailure
	OnSuccess
	Triggers
	// Inverses.
	RequiredBy
	RequisiteOf
	WantedBy
	BoundBy
	ConsistsOf
	ConflictedBy
	OnFailureOf
	OnSuccessOf
	TriggeredBy
	numDepKinds
)

var depNames = [...]string{
	Requires: "Requires", Requisite: "Requisite", Wants: "Wants", BindsTo: "BindsTo", PartOf: "PartOf",
	Conflicts: "Conflicts", After: "After", Before: "Before", OnFailure: "OnFailure", OnSuccess: "OnSuccess",
	Triggers: "Triggers", RequiredBy: "RequiredBy", RequisiteOf: "RequisiteOf", WantedBy: "WantedBy",
	BoundBy: "BoundBy", ConsistsOf: "ConsistsOf", ConflictedBy: "ConflictedBy", OnFailureOf: "OnFailureOf",
	OnSuccessOf: "OnSuccessOf", TriggeredBy: "TriggeredBy",
}

func (k DepKind) String() string { return depNames[k] }

// inverse gives the kind recorded on the other unit.
func (k DepKind) inverse() DepKind {
	switch k {
	case Requires:
		return RequiredBy
	case Requisite:
		return RequisiteOf
	case Wants:
		return WantedBy
	case BindsTo:
		return BoundBy
	case PartOf:
		return ConsistsOf
	case Conflicts:
		return ConflictedBy
	case After:
		return Before
	case Before:
		return After
	case OnFailure:
		return OnFailureOf
	case OnSuccess:
		return OnSuccessOf
	case Triggers:
		return TriggeredBy
	case RequiredBy:
		return Requires
	case RequisiteOf:
		return Requisite
	case WantedBy:
		return Wants
	case BoundBy:
		return BindsTo
	case ConsistsOf:
		return PartOf
	case ConflictedBy:
		return Conflicts
	case OnFailureOf:
		return OnFailure
	case OnSuccessOf:
		return OnSuccess
	case TriggeredBy:
		return Triggers
	}
	return k
}
