package frontend

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/golang/snappy"
)

// KeyFunc returns the secret a tenant's cached results are encrypted with
// (the server derives it from the tenant's data key).
type KeyFunc func(ctx context.Context, tenant string) ([]byte, error)

// GenerationFunc returns the tenant's cache generation: any change of it
// (a deletion request made or cancelled) makes every cached result of the
// tenant unreachable.
type GenerationFunc func(ctx context.Context, tenant string) (string, error)

// sealer encrypts the cached results of one set of tenants. Its keys are
// derived from the secrets of every tenant of the set together, so a
// federated query's results open only with all of them, and a change of
// any one (a rotation, a deletion of the tenant's keys) makes them
// unreadable.
type sealer struct {
	tenants    string
	generation string
	mac        []byte // names cache entries
	aead       cipher.AEAD
}

// newSealer builds the sealer of the tenants of a request (sorted).
func (f *Frontend) newSealer(ctx context.Context, ids []string) (*sealer, error) {
	var secret []byte
	var gens []string
	for _, id := range ids {
		k, err := f.key(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("the results cache key of tenant %s: %w", id, err)
		}
		secret = append(secret, k...)
		g, err := f.generation(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("the results cache generation of tenant %s: %w", id, err)
		}
		gens = append(gens, id+"="+g)
	}
	tenants := strings.Join(ids, "|")
	okm, err := hkdf.Key(sha256.New, secret, nil, "fluxpulse results cache "+tenants, 64)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(okm[32:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{tenants: tenants, generation: strings.Join(gens, ","), mac: okm[:32], aead: aead}, nil
}

// cacheKey names the extent of the query's results in the interval of p:
// an HMAC of everything the results depend on, so that the key shows
// nothing of the query and no other tenant set can name it.
func (s *sealer) cacheKey(q rangeQuery, p piece, interval int64) string {
	bucket := int64(0)
	if interval > 0 {
		bucket = floorTo(p.start, interval)
	}
	h := hmac.New(sha256.New, s.mac)
	for _, part := range []string{"v1", s.tenants, s.generation, q.query, strconv.FormatInt(q.step, 10),
		q.form.Get("lookback_delta"), strconv.FormatInt(bucket, 10), strconv.FormatInt(p.start-floorTo(p.start, q.step), 10)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "fpqf:" + hex.EncodeToString(h.Sum(nil))
}

// extent is the cached part of one interval of a query's results: every
// point from Start to End (evaluation timestamps, milliseconds).
type extent struct {
	Start  int64    `json:"start"`
	End    int64    `json:"end"`
	Result []series `json:"result"`
}

// seal encrypts the extent for the entry key (AES-256-GCM, the key as
// additional data, so that a value moved under another key does not open).
func (s *sealer) seal(key string, e extent) ([]byte, error) {
	plain, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, snappy.Encode(nil, plain), []byte(key)), nil
}

// open decrypts and decodes an extent.
func (s *sealer) open(key string, value []byte) (extent, error) {
	var e extent
	n := s.aead.NonceSize()
	if len(value) < n {
		return e, errors.New("cached value too short")
	}
	compressed, err := s.aead.Open(nil, value[:n], value[n:], []byte(key))
	if err != nil {
		return e, fmt.Errorf("decrypt cached value: %w", err)
	}
	plain, err := snappy.Decode(nil, compressed)
	if err != nil {
		return e, fmt.Errorf("decompress cached value: %w", err)
	}
	if err := json.Unmarshal(plain, &e); err != nil {
		return e, fmt.Errorf("decode cached value: %w", err)
	}
	for k := range e.Result {
		if err := e.Result[k].parseLabels(); err != nil {
			return e, err
		}
	}
	return e, nil
}

// slicePoints returns the series' points with timestamps in [from, to];
// series left without points are dropped.
func slicePoints(ss []series, from, to int64) ([]series, error) {
	var out []series
	for _, s := range ss {
		vs, err := pointsIn(s.Values, from, to)
		if err != nil {
			return nil, err
		}
		hs, err := pointsIn(s.Histograms, from, to)
		if err != nil {
			return nil, err
		}
		if len(vs)+len(hs) > 0 {
			out = append(out, series{Metric: s.Metric, Values: vs, Histograms: hs, lset: s.lset})
		}
	}
	return out, nil
}

func pointsIn(ps []json.RawMessage, from, to int64) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for _, p := range ps {
		t, err := pointTime(p)
		if err != nil {
			return nil, err
		}
		if t >= from && t <= to {
			out = append(out, p)
		}
	}
	return out, nil
}
