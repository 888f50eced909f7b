package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
)

// GoKit adapts a slog.Logger to the go-kit logger dskit takes: the level
// and msg keys become the record's level and message, the other pairs its
// attributes.
func GoKit(l *slog.Logger) log.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return kitLogger{l}
}

type kitLogger struct{ l *slog.Logger }

func (k kitLogger) Log(keyvals ...any) error {
	lv, msg := slog.LevelInfo, ""
	attrs := make([]any, 0, len(keyvals))
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		switch key {
		case "level":
			switch fmt.Sprint(keyvals[i+1]) {
			case "debug":
				lv = slog.LevelDebug
			case "warn":
				lv = slog.LevelWarn
			case "error":
				lv = slog.LevelError
			}
		case "msg":
			msg = fmt.Sprint(keyvals[i+1])
		default:
			attrs = append(attrs, key, keyvals[i+1])
		}
	}
	if k.l.Enabled(context.Background(), lv) {
		k.l.Log(context.Background(), lv, msg, attrs...)
	}
	return nil
}
