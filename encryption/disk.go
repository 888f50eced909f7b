package encryption

// DiskReport is what DiskEncryption could tell about the block device under
// a directory. FluxPulse encrypts everything it puts in the bucket, but not
// the ingesters' WAL and head (Prometheus TSDB files under -data.dir): only
// the device under them can (#12).
type DiskReport struct {
	Dir        string // the directory (or its nearest existing parent), absolute, symbolic links resolved
	MountPoint string // the mount the directory is on
	FSType     string // its filesystem type
	Source     string // its source, for example /dev/mapper/data
	// Device is the major:minor of the filesystem's block device, "" when
	// it has none (tmpfs, overlay, a network filesystem).
	Device string
	// Encrypted is true when dm-crypt (LUKS or plain) is the device or lies
	// below it (through LVM, RAID or other device-mapper layers). Other
	// encryption at rest (self-encrypting or cloud-encrypted disks, ZFS
	// native encryption, fscrypt) is invisible here and reads as false.
	Encrypted bool
}
