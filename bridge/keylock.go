package bridge

import "sync"

// keyLock serialises work per key (a contact id) inside one process. The
// queue serialises across processes; this keeps two webhooks for one new
// contact from racing to create two users even without it (WordPress's
// duplicate checks are not atomic, and wp_users has no unique index).
type keyLock struct {
	mu   sync.Mutex
	held map[string]*keyLockEntry
}

type keyLockEntry struct {
	mu   sync.Mutex
	refs int
}

// lock blocks until key is free, and returns the function that frees it.
func (k *keyLock) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]*keyLockEntry{}
	}
	e := k.held[key]
	if e == nil {
		e = &keyLockEntry{}
		k.held[key] = e
	}
	e.refs++
	k.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}
