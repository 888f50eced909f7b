//go:build !linux

package encryption

import "errors"

// DiskEncryption tells whether dir is on a dm-crypt device. It needs Linux:
// elsewhere it returns an error.
func DiskEncryption(dir string) (DiskReport, error) {
	return DiskReport{Dir: dir}, errors.New("telling whether the data directory is on an encrypted device needs Linux")
}
