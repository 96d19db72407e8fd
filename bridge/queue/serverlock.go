package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// LockServer makes this process the only bridge server on a SQLite store,
// until Close: it holds an exclusive flock on the side file PATH.lock
// (created with mode 0600) and writes its pid there. A second server gets
// an error naming the pid that holds the store. The events commands never
// take this lock, so they keep working beside a running server. A process
// that dies, kill -9 included, drops the lock with its file descriptors;
// a paused one (SIGSTOP) keeps it. On PostgreSQL, which several servers
// share, it does nothing. Calling it again is harmless.
func (s *Store) LockServer() error {
	if s.postgres || s.serverLock != nil {
		return nil
	}
	name := s.path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store %s: lock: %w", s.path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("store %s is in use by another hlbridge server (pid %s holds %s); one server per SQLite file: "+
				"stop it first, or use PostgreSQL to run several", s.path, holder, name)
		}
		return fmt.Errorf("store %s: lock %s: %w", s.path, name, err)
	}
	// The file may predate this version or have been created by hand.
	f.Chmod(0o600)
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	s.serverLock = f
	return nil
}

// readHolder returns the pid written in a lock file, or "unknown".
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	pid := strings.TrimSpace(string(b))
	if err != nil || pid == "" {
		return "unknown"
	}
	if _, err := strconv.Atoi(pid); err != nil {
		return "unknown"
	}
	return pid
}
