package agent

import (
	"context"
	"fmt"
	"time"
)

// sendBacklog sends the WAL backlog until it has caught up with the
// collections, then hands over to the queue. It returns nil when the queue
// runs or ctx ends, and an error only when the queue cannot be started.
func (s *session) sendBacklog(ctx context.Context) error {
	a := s.a
	a.m.backlogActive.Set(1)
	defer a.m.backlogActive.Set(0)
	if s.bl != nil {
		defer s.bl.close()
	}
	wait := 100 * time.Millisecond
	for {
		if s.bl != nil {
			if _, err := s.bl.pass(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				a.logger.Error("cannot read the WAL backlog; samples an earlier run did not send are lost", "err", err)
				s.bl = nil
			}
		}
		ok, err := s.handOver(ctx)
		if ok || err != nil || ctx.Err() != nil {
			return err
		}
		// The receiver failed again during the hand-over: back to
		// sending without holding up collections.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, a.cfg.MaxBackoff)
	}
}

// handOver starts the queue once the backlog has sent everything. The
// queue's WAL watcher sends only samples newer than the moment it starts,
// so no collection may be written between the last backlog pass and that
// moment: handOver holds appendMu throughout, waits for the watcher to log
// its start (watcherStarted), and lets the clock move past it before
// collections resume. It reports false when the last pass could not finish
// within handOverTimeout.
func (s *session) handOver(ctx context.Context) (bool, error) {
	a := s.a
	a.appendMu.Lock()
	defer a.appendMu.Unlock()
	if s.bl != nil {
		pctx, cancel := context.WithTimeout(ctx, handOverTimeout)
		_, err := s.bl.pass(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && pctx.Err() == nil {
				a.logger.Error("cannot read the WAL backlog; samples an earlier run did not send are lost", "err", err)
				s.bl = nil
			}
			return false, nil
		}
	}
	if err := s.rs.ApplyConfig(s.conf); err != nil {
		return false, fmt.Errorf("start the remote-write queue: %w", err)
	}
	select {
	case <-s.started:
	case <-ctx.Done():
	case <-time.After(handOverTimeout):
		a.logger.Warn("the remote-write queue did not report its start; samples of the next moments may not be sent")
	}
	// The watcher sends samples strictly newer than its start, in ms.
	time.Sleep(2 * time.Millisecond)
	s.handedOver.Store(true)
	a.logger.Info("WAL backlog sent; the remote-write queue takes over", "sent_until", time.UnixMilli(s.sent.Load()).UTC())
	return true, nil
}
