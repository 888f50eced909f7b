package main

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/encryption"
)

// openServerStorage opens the bucket and its encryption for a server,
// creating the key file on a first start.
func openServerStorage(cfg serverConfig, logger *slog.Logger, reg prometheus.Registerer) (*storage, error) {
	raw, err := bucket.New(cfg.storage, logger.With("component", "bucket"), reg)
	if err != nil {
		return nil, err
	}
	enc, keys, err := encryption.New(cfg.encryption, raw, logger.With("component", "encryption"))
	if err != nil {
		return nil, errors.Join(err, raw.Close())
	}
	return &storage{raw: raw, enc: enc, keys: keys}, nil
}
