package peers

import "golang.org/x/crypto/ssh"

// ClientKeyMember returns the ID of the live peer or client-only advert
// that logs in with the key whose SHA256 fingerprint is fp. Routes use it
// to relay only between members with live adverts.
func (r *Registry) ClientKeyMember(fp string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	for _, set := range []map[string]*Entry{r.byID, r.clients} {
		for id, e := range set {
			for _, k := range e.ClientKeys {
				if ssh.FingerprintSHA256(k) == fp {
					return id, true
				}
			}
		}
	}
	return "", false
}
