package main

import (
	"github.com/fluxpulse/fluxpulse/ingester"
)

// addIngester builds the ingester: one TSDB per tenant, shipping blocks to
// the bucket. /ready waits for its write-ahead logs to be replayed; at
// shutdown every TSDB is closed (cut and shipped first with
// -ingester.flush-on-shutdown).
func (p *process) addIngester() (*ingester.Ingester, error) {
	ing, err := ingester.New(p.cfg.ingester, p.limits, p.storage.enc, p.logger.With("component", "ingester"), p.reg)
	if err != nil {
		return nil, err
	}
	p.addLoop(ing.Run)
	p.checks = append(p.checks, func() string {
		if !ing.Ready() {
			return "ingester is replaying its write-ahead logs"
		}
		return ""
	})
	p.onClose("ingester", ing.Close)
	return ing, nil
}
