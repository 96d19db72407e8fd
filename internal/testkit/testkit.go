// Package testkit holds the small helpers that tests of several packages
// share: a log buffer safe for concurrent writers and random ids. It
// imports only the standard library, so that every package's tests (the
// doors' included) can use it without an import cycle. The product never
// uses it.
package testkit

import (
	"bytes"
	"crypto/rand"
	"sync"
)

// LogBuffer is a bytes.Buffer safe for concurrent writers, for a logger
// (or a process's output) that tests read while it is written. The zero
// value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// idAlphabet is what HighLevel's ids are made of.
const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// RandomID returns n random letters and digits, like a HighLevel id (20 of
// them) or a unique name.
func RandomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
