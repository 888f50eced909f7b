package alertmanager

import (
	"strings"
	"testing"
)

// FuzzUserConfig: the decoder, Alertmanager's parser behind it and the
// secret handling never panic; what GET would show of a configuration
// holds no secret, and posting it back restores every secret (#16).
func FuzzUserConfig(f *testing.F) {
	f.Add([]byte(hookConfig("http://127.0.0.1:1", "a", "")))
	f.Add([]byte(wrap("global: {smtp_auth_password: &pw hunter2, slack_api_url: 'https://hooks.slack.com/x'}\n" +
		"route: {receiver: r}\nreceivers: [{name: r, email_configs: [{to: a@b.c, auth_password: *pw}]}]")))
	f.Add([]byte(wrap(minimalRoute)))
	f.Add([]byte("template_files: {a.tmpl: '{{ define \"x\" }}{{ end }}'}\n" + wrap("templates: ['*.tmpl']\n"+minimalRoute)))
	f.Fuzz(func(t *testing.T, body []byte) {
		uc, err := decodeUserConfig(body)
		if err != nil {
			return
		}
		if _, err := compile(uc, "http://localhost:9009/alertmanager"); err != nil {
			return
		}
		shown, err := redactSecrets(uc.AlertmanagerConfig)
		if err != nil {
			t.Fatalf("a configuration that compiles does not redact: %v", err)
		}
		if left := secretValues(shown); len(left) > 0 {
			t.Fatalf("GET would show secrets %q:\n%s", left, shown)
		}
		back, err := restoreSecrets(shown, uc.AlertmanagerConfig)
		if err != nil {
			return // a placeholder path the configuration holds twice
		}
		if strings.Contains(back, secretPlaceholder) && !strings.Contains(uc.AlertmanagerConfig, secretPlaceholder) {
			t.Fatalf("posting back left a placeholder:\n%s", back)
		}
	})
}
