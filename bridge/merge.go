package bridge

// actionRank orders actions by how much they do: add absorbs update
// absorbs update_tags, so merged webhooks run the widest one once.
func actionRank(a Action) int {
	switch a {
	case ActionAdd:
		return 3
	case ActionUpdate:
		return 2
	case ActionUpdateTags:
		return 1
	}
	return 0
}

// Merge folds a later request for the same contact into an earlier one, so
// that a burst of webhooks costs one sync: the widest action wins, a
// welcome notification asked for by any of them is kept, the latest role
// and password win, and the later payload overlays the earlier one field by
// field (a field it left out keeps the earlier value). In token mode the
// sync reads the contact's current state anyway. Only an add or an update
// carries its role: an update_tags never changes roles, also when merged
// into an add. A deactivate (a deleted contact) wins over whatever came
// before it and over an update or update_tags after it; an add after it
// wins over it (see the README, Coalescing).
func Merge(earlier, later *Request) *Request {
	switch {
	case earlier == nil:
		return later
	case later == nil:
		return earlier
	}
	m := *earlier
	switch {
	case later.Action == ActionDeactivate:
		// The contact was deleted after the earlier webhooks: the deletion
		// is the contact's last word.
		m.Action = ActionDeactivate
	case m.Action == ActionDeactivate && later.Action == ActionAdd:
		// An add after a deletion asks, explicitly, for a user again: it
		// wins (in token mode it is refused when HighLevel no longer has
		// the contact). An update or update_tags after it does not undo it.
		m.Action = ActionAdd
	case m.Action == ActionDeactivate:
	case actionRank(later.Action) > actionRank(m.Action):
		m.Action = later.Action
	}
	m.SendNotification = m.SendNotification || later.SendNotification
	m.Role = carriedRole(earlier)
	if r := carriedRole(later); r != "" {
		m.Role = r
	}
	if later.Password != "" {
		m.Password = later.Password
	}
	switch {
	case later.Contact == nil:
	case m.Contact == nil:
		m.Contact = later.Contact
	default:
		c := *m.Contact
		c.Overlay(later.Contact)
		m.Contact = &c
	}
	return &m
}

// carriedRole is the role r brings into a merge: its role= when it is an
// add or an update, else none.
func carriedRole(r *Request) string {
	if !r.Action.TakesRole() {
		return ""
	}
	return r.Role
}
