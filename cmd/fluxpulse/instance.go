package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// instanceIDFile keeps the instance ID of a process that has no ring ID
// and no -server.instance-id, so that it stays across restarts.
const instanceIDFile = "instance-id"

// instanceID names this process in the bucket: its usage hours and its
// audit segments are kept under it (#17). It is -server.instance-id if set,
// else the ingester ring ID of an ingester running apart, else an ID made
// once (hostname and random digits) and kept in the data directory.
func instanceID(cfg serverConfig) (string, error) {
	id := cfg.instanceID
	switch {
	case id != "":
	case !cfg.roles.all() && cfg.roles.has(roleIngester):
		id = cfg.cluster.Ring.InstanceID
	default:
		var err error
		if id, err = storedInstanceID(cfg.dataDir); err != nil {
			return "", err
		}
	}
	// It is a path segment of object names: the tenant ID rules fit.
	if err := tenantauth.ValidateID(id); err != nil {
		return "", fmt.Errorf("instance ID (-server.instance-id): %s", strings.Replace(err.Error(), "tenant ID", "ID", 1))
	}
	return id, nil
}

// storedInstanceID reads the ID kept in the data directory, making one on a
// first start.
func storedInstanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, instanceIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("instance ID: %w", err)
	}
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, host) + "-" + hex.EncodeToString(rnd[:])
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("instance ID: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("instance ID: %w", err)
	}
	return id, nil
}
