package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/knownhq/known/profile"
	"github.com/knownhq/known/ratelimit"
	"github.com/knownhq/known/secret"
	"github.com/knownhq/known/service"
	"github.com/knownhq/known/store"
	"github.com/rs/zerolog"
)

// run starts Known and serves until ctx is done, then drains in-flight requests and closes the
// store. args[0] is the program name; getenv reads the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args[1:], getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h asked for the usage, which the flag package has printed
	}
	if err != nil {
		return err
	}
	if cfg.PrintVersion {
		_, err := fmt.Fprintln(stdout, readBuildInfo())
		return err
	}
	log, err := newLogger(stdout, cfg.LogLevel)
	if err != nil {
		return err
	}
	m := newMetrics()

	master := []byte(cfg.Secret)
	if cfg.Secret == "" {
		if master, err = secret.LoadOrCreate(cfg.DataDir); err != nil {
			return err
		}
	} else if len(master) < secret.MinMasterLen {
		return fmt.Errorf("KNOWN_SECRET must be at least %d bytes long", secret.MinMasterLen)
	}

	st, err := store.Open(ctx, store.Config{
		URI:      cfg.MongoDBURI,
		DataDir:  cfg.DataDir,
		Database: cfg.Database,
		Monitor:  m.commandMonitor(),
		Log:      log,
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(cctx); err != nil {
			log.Warn().Err(err).Msg("closing the store")
		}
	}()

	opts := service.Options{Secret: master, AdminToken: cfg.AdminToken}
	if cfg.WidgetRateLimit > 0 {
		// Off is a nil interface, which the service reads as no limit.
		opts.WidgetLimiter = ratelimit.New(cfg.WidgetRateLimit)
	}
	opts.Profiles = profile.New(profile.Options{AllowPrivate: cfg.AllowPrivateNetworks, Observe: m.observeFetch})
	opts.ProfileMaxAge, opts.ProfileConcurrency = cfg.ProfileMaxAge, cfg.ProfileConcurrency
	svc := service.New(st, opts)
	if st.Embedded() && cfg.AdminToken == "" {
		demo, err := svc.EnsureDemoProject(ctx)
		if err != nil {
			return err
		}
		if demo != nil {
			// Shown once, like every secret key: this is how a first run gets a usable project.
			log.Info().Str("app_id", string(demo.Project.ID)).Str("secret_key", demo.SecretKey).
				Msg("created the Demo project; use its secret key as Agent-Secret-Key (it is not shown again)")
		}
	}

	go sweepExpired(ctx, log, svc)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newServer(log, svc, st, m),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	bi := readBuildInfo()
	log.Info().Str("addr", ln.Addr().String()).Bool("embedded_store", st.Embedded()).
		Str("version", bi.Version).Str("commit", bi.Commit).Msg("Known is listening")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := svc.Wait(sctx); err != nil {
		log.Warn().Err(err).Msg("background profile fetches still running at shutdown")
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newLogger(w io.Writer, level string) (zerolog.Logger, error) {
	l, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("KNOWN_LOG_LEVEL: %q is not debug, info, warn or error", level)
	}
	return zerolog.New(w).Level(l).With().Timestamp().Logger(), nil
}

// sweepExpired deletes expired widget sessions, jti records and identification tokens every
// hour until ctx is done: the store has no TTL index that both MongoDB and FerretDB honour.
func sweepExpired(ctx context.Context, log zerolog.Logger, svc *service.Service) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := svc.SweepExpired(ctx); err != nil {
				log.Warn().Err(err).Msg("sweeping expired records")
			} else if n > 0 {
				log.Info().Int64("deleted", n).Msg("swept expired sessions, jti records and identification tokens")
			}
		}
	}
}
