//go:build unix

package audit

import (
	"errors"
	"os"
	"syscall"
)

// lockExclusive takes an exclusive flock on f, waiting for other holders.
// flock locks belong to the open file description, so two Loggers on the
// same path exclude each other even inside one process.
func lockExclusive(f *os.File) error { return flock(f, syscall.LOCK_EX) }

// lockShared takes a shared flock on f.
func lockShared(f *os.File) error { return flock(f, syscall.LOCK_SH) }

// unlock releases the flock on f.
func unlock(f *os.File) error { return flock(f, syscall.LOCK_UN) }

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if !errors.Is(ferr, syscall.EINTR) {
				return
			}
		}
	})
	return errors.Join(err, ferr)
}
