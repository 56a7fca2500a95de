package peers

import "time"

// Suspect stops listing the peer id when nothing was heard from it since
// since: the session pool calls it when every route to the peer failed in
// a dial that began then. The peer keeps its entry (its client keys still
// log in, its reverse connections are still taken, its name is kept for
// it) and is listed again by the next advert of it (Upsert) or when a
// dial reaches it again (Heard). Peers given with --peer are never
// hidden: the user named them. It reports whether the peer was hidden
// now.
func (r *Registry) Suspect(id string, since time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	if !ok || e.Source == SourceFlag || r.hidden[id] || !e.Updated.Before(since) {
		return false
	}
	if r.hidden == nil {
		r.hidden = map[string]bool{}
	}
	r.hidden[id] = true
	r.journalLocked(NameChange{Name: e.DisplayName, ID: id, Removed: true})
	r.changedLocked()
	return true
}

// Heard lists the peer id again if it was hidden: a dial reached it (the
// session pool calls it), news as good as an advert. It reports whether
// the peer was hidden.
func (r *Registry) Heard(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	if !ok || !r.hidden[id] {
		return false
	}
	e.Updated = r.now()
	r.unhideLocked(e)
	r.changedLocked()
	return true
}

// Hidden reports whether the peer id is live but not listed, because no
// route reached it (see Suspect).
func (r *Registry) Hidden(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hidden[id]
}

// unhideLocked lists a hidden peer again: something new was heard of it.
func (r *Registry) unhideLocked(e *Entry) {
	if !r.hidden[e.ID] {
		return
	}
	delete(r.hidden, e.ID)
	r.journalLocked(NameChange{Name: e.DisplayName, ID: e.ID})
}

// listedLocked copies the entries that are listed: live shares not hidden.
func (r *Registry) listedLocked() []Entry {
	out := snapshot(r.byID)
	if len(r.hidden) == 0 {
		return out
	}
	listed := out[:0]
	for _, e := range out {
		if !r.hidden[e.ID] {
			listed = append(listed, e)
		}
	}
	return listed
}

// yieldHiddenLocked gives a hidden peer holding name a suffixed name
// instead, so a live newcomer (a member back with a new key) is not kept
// from its name by a peer nobody reaches. The name book still decides
// who owns a remembered name.
func (r *Registry) yieldHiddenLocked(name string) {
	id, ok := r.names[name]
	if !ok || !r.hidden[id] {
		return
	}
	e := r.byID[id]
	delete(r.names, name)
	e.DisplayName = r.suffixedName(id, name)
	r.names[e.DisplayName] = id
}
