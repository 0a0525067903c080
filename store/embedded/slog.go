package embedded

import (
	"context"
	"log/slog"
	"strings"

	"github.com/rs/zerolog"
)

// slogHandler routes FerretDB's log/slog records into zerolog, keeping warnings and errors.
type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	// FerretDB logs every reply to a command it lacks (the driver's endSessions on disconnect)
	// as a warning with the whole wire message: noise, and it may hold document data.
	if strings.HasPrefix(r.Message, "Response ") {
		return nil
	}
	ev := h.log.Warn()
	if r.Level >= slog.LevelError {
		ev = h.log.Error()
	}
	for _, a := range h.attrs {
		ev = ev.Any(a.Key, a.Value.Any())
	}
	r.Attrs(func(a slog.Attr) bool {
		ev = ev.Any(a.Key, a.Value.Any())
		return true
	})
	ev.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &slogHandler{log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	return &slogHandler{log: h.log.With().Str("group", name).Logger(), attrs: h.attrs}
}
