package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/notify/discord"
	"github.com/prometheus/alertmanager/notify/email"
	"github.com/prometheus/alertmanager/notify/incidentio"
	"github.com/prometheus/alertmanager/notify/jira"
	"github.com/prometheus/alertmanager/notify/mattermost"
	"github.com/prometheus/alertmanager/notify/msteams"
	"github.com/prometheus/alertmanager/notify/msteamsv2"
	"github.com/prometheus/alertmanager/notify/opsgenie"
	"github.com/prometheus/alertmanager/notify/pagerduty"
	"github.com/prometheus/alertmanager/notify/pushover"
	"github.com/prometheus/alertmanager/notify/rocketchat"
	"github.com/prometheus/alertmanager/notify/slack"
	"github.com/prometheus/alertmanager/notify/sns"
	"github.com/prometheus/alertmanager/notify/telegram"
	"github.com/prometheus/alertmanager/notify/victorops"
	"github.com/prometheus/alertmanager/notify/webex"
	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/notify/wechat"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
	"golang.org/x/time/rate"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/logthrottle"
)

// integrationBuilder builds the integrations of one receiver. Every HTTP
// client dials through the firewall; every notifier is wrapped by the
// tenant's guard (nil when the configuration is only being checked).
type integrationBuilder struct {
	tmpl     *template.Template
	logger   *slog.Logger
	fw       *firewall
	guard    *guard
	receiver string
	out      []notify.Integration
	errs     []error
}

func (b *integrationBuilder) add(name string, i int, rs notify.ResolvedSender, n notify.Notifier) {
	if b.guard != nil {
		n = &guardedNotifier{next: n, g: b.guard, integration: name, receiver: b.receiver}
	}
	b.out = append(b.out, notify.NewIntegration(n, rs, name, i, b.receiver))
}

// addAll builds the integrations of one kind with their package's New.
func addAll[C notify.ResolvedSender, N notify.Notifier](b *integrationBuilder, name string, cs []C,
	newFn func(C, *template.Template, *slog.Logger, ...commoncfg.HTTPClientOption) (N, error)) {
	for i, c := range cs {
		n, err := newFn(c, b.tmpl, b.logger.With("integration", name), commoncfg.WithDialContextFunc(b.fw.DialContext))
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("receiver %q: %s_configs[%d]: %w", b.receiver, name, i, err))
			continue
		}
		b.add(name, i, c, n)
	}
}

// buildReceivers builds the integrations of every receiver a route uses,
// as Alertmanager does, with FluxPulse's firewall and guard.
func buildReceivers(cfg *config.Config, tmpl *template.Template, logger *slog.Logger, fw *firewall, g *guard) (map[string][]notify.Integration, error) {
	active := map[string]bool{}
	dispatch.NewRoute(cfg.Route, nil).Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = true })
	out := map[string][]notify.Integration{}
	var errs []error
	for _, rcv := range cfg.Receivers {
		if !active[rcv.Name] {
			continue
		}
		b := &integrationBuilder{tmpl: tmpl, logger: logger, fw: fw, guard: g, receiver: rcv.Name}
		b.build(rcv)
		out[rcv.Name] = b.out
		errs = append(errs, b.errs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// build builds every integration of a receiver. TestEveryIntegrationIsBuilt
// fails when an Alertmanager release adds a kind this does not know.
func (b *integrationBuilder) build(rcv config.Receiver) {
	addAll(b, "webhook", rcv.WebhookConfigs, webhook.New)
	for i, c := range rcv.EmailConfigs {
		email.New(c, b.tmpl, b.logger) // sets the default headers into c, once
		b.add("email", i, c, &firewalledEmail{conf: c, tmpl: b.tmpl, logger: b.logger.With("integration", "email"), fw: b.fw})
	}
	addAll(b, "pagerduty", rcv.PagerdutyConfigs, pagerduty.New)
	addAll(b, "opsgenie", rcv.OpsGenieConfigs, opsgenie.New)
	addAll(b, "wechat", rcv.WechatConfigs, wechat.New)
	addAll(b, "slack", rcv.SlackConfigs, slack.New)
	addAll(b, "victorops", rcv.VictorOpsConfigs, victorops.New)
	addAll(b, "pushover", rcv.PushoverConfigs, pushover.New)
	addAll(b, "sns", rcv.SNSConfigs, sns.New)
	addAll(b, "telegram", rcv.TelegramConfigs, telegram.New)
	addAll(b, "discord", rcv.DiscordConfigs, discord.New)
	addAll(b, "webex", rcv.WebexConfigs, webex.New)
	addAll(b, "msteams", rcv.MSTeamsConfigs, msteams.New)
	addAll(b, "msteamsv2", rcv.MSTeamsV2Configs, msteamsv2.New)
	addAll(b, "jira", rcv.JiraConfigs, jira.New)
	addAll(b, "incidentio", rcv.IncidentioConfigs, incidentio.New)
	addAll(b, "rocketchat", rcv.RocketchatConfigs, rocketchat.New)
	addAll(b, "mattermost", rcv.MattermostConfigs, mattermost.New)
}

// firewalledEmail sends e-mail through Alertmanager's e-mail notifier,
// which dials on its own: the smarthost is resolved here, checked by the
// firewall, and the notifier is pointed at the address checked (TLS still
// verifies the host name).
type firewalledEmail struct {
	conf   *email.EmailConfig
	tmpl   *template.Template
	logger *slog.Logger
	fw     *firewall
}

// Notify implements notify.Notifier.
func (e *firewalledEmail) Notify(ctx context.Context, as ...*alert.Alert) notify.NotifyVerdict {
	host := e.conf.Smarthost.Host
	port, err := net.DefaultResolver.LookupPort(ctx, "tcp", e.conf.Smarthost.Port)
	if err != nil {
		return notify.Unrecoverable(fmt.Errorf("smarthost port %q: %w", e.conf.Smarthost.Port, err), notify.ConfigErrorReason)
	}
	ip, err := e.fw.resolve(ctx, host, uint16(port))
	if err != nil {
		return notify.Retry(0, err, notify.DefaultReason) // the guard turns a refusal into a final failure
	}
	c := *e.conf
	c.Smarthost.Host = ip.String()
	tc := commoncfg.TLSConfig{}
	if e.conf.TLSConfig != nil {
		tc = *e.conf.TLSConfig
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	c.TLSConfig = &tc
	return email.New(&c, e.tmpl, e.logger).Notify(ctx, as...)
}

// guard holds a tenant's notification rate limiters and accounts for
// refusals of the firewall.
type guard struct {
	tenant  string
	limits  func() limits.Limits
	metrics *metrics
	logger  *slog.Logger
	logs    *logthrottle.Throttle

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by integration name
}

// allow takes a notification from the integration's rate budget, or
// returns how long until one is available.
func (g *guard) allow(integration string) (time.Duration, bool) {
	r := g.limits().AlertmanagerNotificationRateLimit
	if r <= 0 {
		return 0, true
	}
	burst := max(1, int(math.Ceil(r)))
	g.mu.Lock()
	l := g.limiters[integration]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(r), burst)
		g.limiters[integration] = l
	} else if l.Limit() != rate.Limit(r) || l.Burst() != burst {
		l.SetLimit(rate.Limit(r))
		l.SetBurst(burst)
	}
	g.mu.Unlock()
	res := l.Reserve()
	d := res.Delay()
	if d == 0 {
		return 0, true
	}
	res.Cancel()
	return d, false
}

// guardedNotifier is one integration's notifier behind the tenant's guard.
type guardedNotifier struct {
	next                  notify.Notifier
	g                     *guard
	integration, receiver string
}

// Notify implements notify.Notifier.
func (n *guardedNotifier) Notify(ctx context.Context, as ...*alert.Alert) notify.NotifyVerdict {
	g := n.g
	if d, ok := g.allow(n.integration); !ok {
		g.metrics.rateLimited.WithLabelValues(g.tenant, n.integration).Inc()
		return notify.Retry(d, fmt.Errorf("the tenant's %s notifications are over their rate of %g per second (%s); retrying in %s",
			n.integration, g.limits().AlertmanagerNotificationRateLimit, limits.Source(limits.FlagAlertmanagerNotificationRate), d.Round(time.Millisecond)),
			notify.RateLimitedReason)
	}
	v := n.next.Notify(ctx, as...)
	if err := v.Err(); err != nil && errors.Is(err, ErrBlocked) {
		g.metrics.blocked.WithLabelValues(g.tenant, n.integration).Inc()
		if g.logs.Allow(n.receiver + "/" + n.integration) {
			g.logger.Warn("notification refused by the receivers firewall", "receiver", n.receiver, "integration", n.integration, "err", err)
		}
		return notify.Unrecoverable(err, notify.ConfigErrorReason)
	}
	return v
}
