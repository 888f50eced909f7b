package main

import (
	"github.com/fluxpulse/fluxpulse/compactor"
)

// addCompactor builds the compactor: it merges, levels and deletes blocks
// in the bucket in the background, and carries out deletion requests,
// telling heads (the ingesters) first.
func (p *process) addCompactor(heads compactor.Heads) error {
	comp, err := compactor.New(p.cfg.compactor, p.storage.raw, p.storage.enc, p.storage.keys, p.limits, p.logger.With("component", "compactor"), p.reg)
	if err != nil {
		return err
	}
	if err := p.carryOutDeletions(comp, heads); err != nil {
		return err
	}
	if p.member != nil {
		if err := p.shardCompactor(comp); err != nil {
			return err
		}
	}
	p.compactor = comp
	p.addLoop(comp.Run)
	return nil
}
