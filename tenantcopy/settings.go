package tenantcopy

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
)

// limitsMap returns the limits by their runtime-file keys.
func limitsMap(l limits.Limits) map[string]any {
	b, err := yaml.Marshal(l)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

// alertmanagerDir is where the multi-tenant Alertmanager keeps a tenant's
// settings and state in the bucket.
const alertmanagerDir = "alertmanager"

// maxSettingsBytes bounds one settings object read for a copy.
const maxSettingsBytes = 4 << 20

// redacted replaces every secret value.
const redacted = "<redacted>"

// secretWords are parts of setting names whose values are credentials, or
// may hold them (a Slack or webhook URL carries its token).
var secretWords = []string{"password", "secret", "token", "key", "credential", "auth", "url"}

// setting is one object below <tenant>/alertmanager/ as the copy shows it.
type setting struct {
	Object  string `json:"object"`
	Size    int64  `json:"size"`
	Content any    `json:"content,omitempty"` // YAML or JSON settings, redacted
	Note    string `json:"note,omitempty"`
}

func (c *copier) alertmanager(ctx context.Context, w io.Writer) error {
	out := []setting{}
	prefix := c.tenant + "/" + alertmanagerDir
	err := c.src.Bucket.Iter(ctx, prefix, bucket.IterOptions{Recursive: true}, func(name string) error {
		s, err := c.setting(ctx, name)
		if err != nil {
			return err
		}
		s.Object = strings.TrimPrefix(name, c.tenant+"/")
		out = append(out, s)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, out)
}

// setting reads one object: YAML and JSON ones with their secrets
// redacted, others (state) by size only.
func (c *copier) setting(ctx context.Context, name string) (setting, error) {
	var s setting
	a, err := c.src.Bucket.Attributes(ctx, name)
	if err != nil {
		return s, err
	}
	s.Size = a.Size
	if !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml") && !strings.HasSuffix(name, ".json") {
		s.Note = "not a settings file (state): content not included"
		return s, nil
	}
	if a.Size > maxSettingsBytes {
		s.Note = fmt.Sprintf("larger than %d bytes: content not included", maxSettingsBytes)
		return s, nil
	}
	r, err := c.src.Bucket.Get(ctx, name)
	if err != nil {
		return s, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxSettingsBytes))
	if err != nil {
		return s, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		s.Note = "does not parse as YAML or JSON: content not included"
		return s, nil
	}
	redact(&doc)
	if err := doc.Decode(&s.Content); err != nil {
		s.Note = "does not decode: content not included"
	}
	return s, nil
}

// redact replaces, everywhere in n, the value of every mapping key that
// names a credential.
func redact(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if isSecret(n.Content[i].Value) {
				n.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: redacted}
				continue
			}
			redact(n.Content[i+1])
		}
		return
	}
	for _, c := range n.Content {
		redact(c)
	}
}

func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
