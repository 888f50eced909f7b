package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

// adminTokenEnv holds the admin token of the CLI's -url mode when -token is
// not given (flags show in process listings).
const adminTokenEnv = "FLUXPULSE_ADMIN_TOKEN"

// cliRemote are the flags of the tenant and token commands that pick where
// a change is made: a running server's admin API, the bucket, or the
// runtime file.
type cliRemote struct {
	url     string
	token   string
	backend string
	storage bucket.Config
}

func (c *cliRemote) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "Base URL of a running server (for example http://fluxpulse:9009): make the change through its admin API with an operator token (-token or $"+adminTokenEnv+") instead of editing files.")
	fs.StringVar(&c.token, "token", "", "Operator token for -url (default $"+adminTokenEnv+").")
	fs.StringVar(&c.backend, "runtime-config.backend", runtimeBackendFile, "Where the runtime configuration lives, as the server's flag says: file or bucket (with the server's -blocks-storage.* and -encryption.key-file flags).")
	c.storage.RegisterFlags(fs)
}

// cliApply makes a change offline: in the bucket or in the runtime file.
func cliApply(files *cliFiles, op runtimeconfig.Op) (old, cur *runtimeconfig.Config, err error) {
	op.Actor, op.Time = cliActor(), time.Now().UTC().Truncate(time.Second)
	ctx := context.Background()
	switch files.remote.backend {
	case runtimeBackendFile:
		return runtimeconfig.FileStore{Path: files.runtimeFile, FlagDefaults: defaultLimits()}.Apply(ctx, op)
	case runtimeBackendBucket:
		store, closeBucket, err := files.openRuntimeStore()
		if err != nil {
			return nil, nil, err
		}
		defer closeBucket()
		return store.Apply(ctx, op)
	}
	return nil, nil, fmt.Errorf("-runtime-config.backend must be %s or %s, got %q", runtimeBackendFile, runtimeBackendBucket, files.remote.backend)
}

// where names where a change was made, for the CLI's messages.
func (c *cliFiles) where() string {
	if c.remote.backend == runtimeBackendBucket {
		return "the bucket"
	}
	return c.runtimeFile
}

// openRuntimeStore opens the bucket backend of the runtime configuration.
func (c *cliFiles) openRuntimeStore() (*runtimeconfig.BucketStore, func(), error) {
	cfg := c.remote.storage
	if cfg.Filesystem.Dir == "" {
		cfg.Filesystem.Dir = filepath.Join(c.dataDir, "bucket")
	}
	raw, err := bucket.New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return nil, nil, err
	}
	store, err := openRuntimeStore(c.keyFile, raw, defaultLimits())
	if err != nil {
		return nil, nil, errors.Join(err, raw.Close())
	}
	return store, func() { _ = raw.Close() }, nil
}

// readRuntime returns the runtime configuration offline.
func (c *cliFiles) readRuntime() (*runtimeconfig.Config, error) {
	if c.remote.backend != runtimeBackendBucket {
		return runtimeconfig.Load(c.runtimeFile, defaultLimits())
	}
	store, closeBucket, err := c.openRuntimeStore()
	if err != nil {
		return nil, err
	}
	defer closeBucket()
	b, err := store.Read(context.Background())
	if err != nil {
		return nil, err
	}
	return runtimeconfig.Parse(b, defaultLimits())
}

// adminCall sends one request to a server's admin API and decodes the data
// of its answer into out (nil: discard it).
func (c *cliRemote) adminCall(method, path string, body, out any) error {
	token := c.token
	if token == "" {
		token = os.Getenv(adminTokenEnv)
	}
	if token == "" {
		return fmt.Errorf("-url needs an operator token: set -token or $%s", adminTokenEnv)
	}
	base, err := url.Parse(strings.TrimSuffix(c.url, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return fmt.Errorf("-url %q must be an absolute URL such as http://fluxpulse:9009", c.url)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if jerr := json.Unmarshal(b, &env); jerr != nil || resp.StatusCode >= 300 {
		msg := env.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Data, out)
}

// remoteTenant runs tenant create, delete and list through the admin API.
func remoteTenant(files *cliFiles, cmd, tenant string, stdout io.Writer) error {
	r := &files.remote
	switch cmd {
	case "create":
		if err := r.adminCall(http.MethodPost, "/api/v1/admin/tenants", map[string]string{"tenant": tenant}, nil); err != nil {
			return err
		}
	case "delete":
		if err := r.adminCall(http.MethodDelete, "/api/v1/admin/tenants/"+url.PathEscape(tenant)+"/record", nil, nil); err != nil {
			return err
		}
	case "list":
		var data struct {
			Tenants     []tenantJSON `json:"tenants"`
			AdminTokens []tokenJSON  `json:"admin_tokens"`
		}
		if err := r.adminCall(http.MethodGet, "/api/v1/admin/tenants", nil, &data); err != nil {
			return err
		}
		f := &runtimeconfig.File{Tenants: map[string]*runtimeconfig.Tenant{}}
		for _, t := range data.Tenants {
			rt := &runtimeconfig.Tenant{}
			for _, tok := range t.Tokens {
				rt.Tokens = append(rt.Tokens, tok.entry())
			}
			f.Tenants[t.Tenant] = rt
		}
		for _, tok := range data.AdminTokens {
			f.AdminTokens = append(f.AdminTokens, tok.entry())
		}
		return listTenants(stdout, &runtimeconfig.Config{File: f})
	}
	fmt.Fprintf(stdout, "tenant %s %sd through %s\n", tenant, cmd, r.url)
	return nil
}

// entry turns token metadata back into an entry, for listing.
func (t tokenJSON) entry() tenantauth.Token {
	e := tenantauth.Token{ID: t.ID, Created: t.Created, Expires: t.Expires, Description: t.Description, Tenants: t.Tenants}
	for _, s := range t.Scopes {
		e.Scopes = append(e.Scopes, tenantauth.Scope(s))
	}
	return e
}

// remoteTokenCreate creates a token through the admin API and prints it.
func remoteTokenCreate(r *cliRemote, spec runtimeconfig.TokenSpec, scopes string, stdout io.Writer) error {
	body := map[string]any{"tenant": spec.Tenant, "scopes": strings.Split(scopes, ","), "description": spec.Description, "tenants": spec.Tenants}
	if spec.TTL > 0 {
		body["expires_in"] = spec.TTL.String()
	}
	var tok tokenJSON
	if err := r.adminCall(http.MethodPost, "/api/v1/admin/tokens", body, &tok); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "token %s for %s, scopes %s\n\n    %s\n\nIt is shown only now: FluxPulse stores only its hash.\n", tok.ID, tokenOwner(spec.Tenant), scopes, tok.Token)
	return nil
}

func tokenOwner(tenant string) string {
	if tenant == "" {
		return "every tenant (admin)"
	}
	return tenant
}
