package main

import (
	"log/slog"

	"github.com/fluxpulse/fluxpulse/encryption"
)

// warnUnencryptedDisk logs once, at start, when the ingesters' TSDB
// directory is not on an encrypted block device as far as FluxPulse can
// tell: the WAL and head are Prometheus TSDB files that FluxPulse cannot
// encrypt itself (#12, docs/storage.md).
func warnUnencryptedDisk(dir string, logger *slog.Logger) {
	rep, err := encryption.DiskEncryption(dir)
	switch {
	case err != nil:
		logger.Warn("cannot tell whether the data directory is on an encrypted block device; the ingesters' WAL and head (recent samples) are not encrypted by FluxPulse: see docs/storage.md",
			"dir", dir, "err", err)
	case !rep.Encrypted:
		logger.Warn("the data directory is not on a dm-crypt/LUKS device as far as FluxPulse can tell; the ingesters' WAL and head (recent samples) are stored unencrypted on it, so put -data.dir on an encrypted device: see docs/storage.md",
			"dir", dir, "checked", rep.Dir, "mount_point", rep.MountPoint, "fstype", rep.FSType, "source", rep.Source, "device", rep.Device)
	default:
		logger.Info("the data directory is on an encrypted block device", "dir", dir, "source", rep.Source, "device", rep.Device)
	}
}
