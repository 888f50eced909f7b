package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxpulse/fluxpulse/encryption"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
)

const tenantUsage = `usage: fluxpulse tenant <create|list|delete|delete-data|copy> [flags]

  create -tenant X   add tenant X to the runtime file (no tokens yet)
  list               list tenants with their tokens (IDs, scopes, expiry; never secrets)
  delete -tenant X   remove tenant X and its tokens: it can no longer push or query
  delete-data -tenant X
                     delete tenant X's data keys (crypto-shredding: its data is
                     unreadable at once; objects are removed in the background).
                     On a running server use DELETE /api/v1/admin/tenants/X.
  copy -tenant X -o FILE
                     write a copy of what FluxPulse keeps about tenant X besides
                     its samples (.tar.gz of JSON files with a README.txt).
                     On a running server use GET /api/v1/admin/tenants/X/copy.

Every command takes -data.dir and -runtime-config.file; a running server
applies the change within its reload period. With -runtime-config.backend=bucket
(and the server's -blocks-storage.* and -encryption.key-file flags) create,
delete and list work on the configuration in the bucket; with -url and an
operator token (-token or $FLUXPULSE_ADMIN_TOKEN) they go through a running
server's admin API instead.`

const tokenUsage = `usage: fluxpulse token <create|revoke> [flags]

  create -tenant X -scopes write,read [-expires 720h] [-description text] [-tenants a,b]
           create a token for tenant X and print it once; only its hash is stored.
           Without -tenant, creates an operator (admin) token valid for every tenant.
  revoke -id ID    remove the token with that ID

Every command takes -data.dir and -runtime-config.file, or
-runtime-config.backend=bucket with the bucket's flags, or -url and -token
to go through a running server's admin API.`

// cliFiles are the files the tenant and token commands edit.
type cliFiles struct {
	dataDir     string
	runtimeFile string
	auditFile   string
	keyFile     string // seals the audit entries
	remote      cliRemote
}

func (c *cliFiles) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.dataDir, "data.dir", "./data", "The server's data directory.")
	fs.StringVar(&c.runtimeFile, "runtime-config.file", "", "The runtime file (default <data.dir>/runtime.yaml).")
	fs.StringVar(&c.auditFile, "audit.log-file", "", "The audit log (default <data.dir>/audit/audit.log).")
	fs.StringVar(&c.keyFile, "encryption.key-file", "", "The master key file, whose keys seal the audit entries (default <data.dir>/"+encryption.DefaultKeyFileName+").")
}

func (c *cliFiles) resolve() {
	if c.runtimeFile == "" {
		c.runtimeFile = filepath.Join(c.dataDir, "runtime.yaml")
	}
	if c.auditFile == "" {
		c.auditFile = filepath.Join(c.dataDir, "audit", "audit.log")
	}
	if c.keyFile == "" {
		c.keyFile = filepath.Join(c.dataDir, encryption.DefaultKeyFileName)
	}
}

// cliActor names the person running a CLI command in the audit log.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// defaultLimits are the flag defaults: the CLI checks the file against them.
func defaultLimits() limits.Limits {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return l
}

func parseSub(name string, args []string, stderr io.Writer, usage string, extra func(*flag.FlagSet)) (*cliFiles, error) {
	var files cliFiles
	fs := flag.NewFlagSet("fluxpulse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	files.registerFlags(fs)
	files.remote.registerFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	files.resolve()
	return &files, nil
}

func runTenant(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tenantUsage)
		return errors.New("tenant: no command given")
	}
	var tenant string
	withTenant := func(fs *flag.FlagSet) { fs.StringVar(&tenant, "tenant", "", "Tenant ID.") }
	switch args[0] {
	case "create", "delete":
		files, err := parseSub("tenant "+args[0], args[1:], stderr, tenantUsage, withTenant)
		if err != nil {
			return err
		}
		if tenant == "" {
			return fmt.Errorf("tenant %s: -tenant must be set", args[0])
		}
		if files.remote.url != "" {
			return remoteTenant(files, args[0], tenant, stdout)
		}
		op := runtimeconfig.Op{Action: runtimeconfig.OpTenantCreate, Tenant: tenant}
		if args[0] == "delete" {
			op.Action = runtimeconfig.OpTenantDelete
		}
		old, cur, err := cliApply(files, op)
		if err != nil {
			return err
		}
		auditRuntimeChanges(files, old, cur)
		fmt.Fprintf(stdout, "tenant %s %sd in %s\n", tenant, args[0], files.where())
		return nil
	case "delete-data":
		return runDeleteData(args[1:], stdout, stderr)
	case "copy":
		return runTenantCopy(args[1:], stdout, stderr)
	case "list":
		files, err := parseSub("tenant list", args[1:], stderr, tenantUsage, nil)
		if err != nil {
			return err
		}
		if files.remote.url != "" {
			return remoteTenant(files, "list", "", stdout)
		}
		c, err := files.readRuntime()
		if err != nil {
			return err
		}
		return listTenants(stdout, c)
	}
	fmt.Fprintln(stderr, tenantUsage)
	return fmt.Errorf("tenant: unknown command %q", args[0])
}

func listTenants(w io.Writer, c *runtimeconfig.Config) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tTOKEN ID\tSCOPES\tEXPIRES\tDESCRIPTION")
	row := func(tenant string, t tenantauth.Token) {
		exp := "never"
		if !t.Expires.IsZero() {
			exp = t.Expires.UTC().Format(time.RFC3339)
		}
		scopes := make([]string, len(t.Scopes))
		for i, s := range t.Scopes {
			scopes[i] = string(s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", tenant, t.ID, strings.Join(scopes, ","), exp, t.Description)
	}
	for _, id := range c.File.TenantIDs() {
		toks := c.File.Tenants[id].Tokens
		if len(toks) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t(no tokens)\n", id)
		}
		for _, t := range toks {
			row(id, t)
		}
	}
	for _, t := range c.File.AdminTokens {
		row("* (admin)", t)
	}
	return tw.Flush()
}

func runToken(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokenUsage)
		return errors.New("token: no command given")
	}
	switch args[0] {
	case "create":
		var spec runtimeconfig.TokenSpec
		var scopes, tenants string
		files, err := parseSub("token create", args[1:], stderr, tokenUsage, func(fs *flag.FlagSet) {
			fs.StringVar(&spec.Tenant, "tenant", "", "Tenant the token belongs to; empty for an operator (admin) token.")
			fs.StringVar(&scopes, "scopes", "write,read", "Comma-separated scopes: write, read, rules, alerts, delete (series deletion), admin (tenant administration, alerts and delete included).")
			fs.DurationVar(&spec.TTL, "expires", 0, "Lifetime of the token (e.g. 2160h); 0 never expires.")
			fs.StringVar(&spec.Description, "description", "", "What the token is for.")
			fs.StringVar(&tenants, "tenants", "", "Further tenants the token may act for (federated reads), comma-separated.")
		})
		if err != nil {
			return err
		}
		if spec.Scopes, err = tenantauth.ParseScopes(scopes); err != nil {
			return err
		}
		if tenants != "" {
			spec.Tenants = strings.Split(tenants, ",")
		}
		if files.remote.url != "" {
			return remoteTokenCreate(&files.remote, spec, scopes, stdout)
		}
		token, entry, err := runtimeconfig.NewTokenEntry(spec, time.Now())
		if err != nil {
			return err
		}
		old, cur, err := cliApply(files, runtimeconfig.Op{Action: runtimeconfig.OpTokenCreate, Tenant: spec.Tenant, Token: &entry})
		if err != nil {
			return err
		}
		auditRuntimeChanges(files, old, cur)
		fmt.Fprintf(stdout, "token %s for %s, scopes %s\n\n    %s\n\nIt is shown only now: FluxPulse stores only its hash (in %s).\n", entry.ID, tokenOwner(spec.Tenant), scopes, token, files.where())
		return nil
	case "revoke":
		var id string
		files, err := parseSub("token revoke", args[1:], stderr, tokenUsage, func(fs *flag.FlagSet) {
			fs.StringVar(&id, "id", "", "ID of the token to revoke.")
		})
		if err != nil {
			return err
		}
		if id == "" {
			return errors.New("token revoke: -id must be set")
		}
		if files.remote.url != "" {
			if err := files.remote.adminCall(http.MethodDelete, "/api/v1/admin/tokens/"+url.PathEscape(id), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "token %s revoked through %s; every server refuses it within its reload period\n", id, files.remote.url)
			return nil
		}
		old, cur, err := cliApply(files, runtimeconfig.Op{Action: runtimeconfig.OpTokenRevoke, TokenID: id})
		if err != nil {
			return err
		}
		auditRuntimeChanges(files, old, cur)
		fmt.Fprintf(stdout, "token %s revoked; a running server refuses it after its next reload\n", id)
		return nil
	}
	fmt.Fprintln(stderr, tokenUsage)
	return fmt.Errorf("token: unknown command %q", args[0])
}
