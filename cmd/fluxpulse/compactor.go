package main

import (
	"github.com/fluxpulse/fluxpulse/compactor"
)

// addCompactor builds the compactor: it merges, levels and deletes blocks
// in the bucket in the background.
func (p *process) addCompactor() error {
	comp, err := compactor.New(p.cfg.compactor, p.storage.raw, p.storage.enc, p.storage.keys, p.limits, p.logger.With("component", "compactor"), p.reg)
	if err != nil {
		return err
	}
	p.addLoop(comp.Run)
	return nil
}
