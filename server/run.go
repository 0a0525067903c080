package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	// Known also stops itself: when another instance takes its lease over.
	ctx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	log, err := newLogger(stdout, cfg.LogLevel)
	if err != nil {
		return err
	}
	m := newMetrics()

	// Secrets are checked before the store opens, so that a bad one fails at once.
	for _, sv := range []struct{ name, value string }{{"KNOWN_SECRET", cfg.Secret}, {"KNOWN_SECRET_PREVIOUS", cfg.SecretPrevious}} {
		if sv.value != "" && len(sv.value) < secret.MinMasterLen {
			return fmt.Errorf("%s must be at least %d bytes long", sv.name, secret.MinMasterLen)
		}
	}

	// The store opens first: on the embedded store that locks the data directory, which
	// holds the generated secret too.
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
	storeOpen := true
	var lease *store.Lease
	defer func() {
		if storeOpen { // a start that failed; a shutdown closes the store itself
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if lease != nil {
				_ = lease.Release(cctx)
			}
			if err := st.Close(cctx); err != nil {
				log.Warn().Err(err).Msg("closing the store")
			}
		}
	}()
	lease, err = claimLease(ctx, log, cfg, st)
	if err != nil {
		return err
	}
	leaseCtx, stopLease := context.WithCancel(context.Background())
	defer stopLease()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		if lease == nil {
			return
		}
		// Renewed until the store closes, through the drain, which may outlast its TTL.
		if err := lease.Keep(leaseCtx, log); err != nil {
			log.Error().Err(err).Msg("stopping: another instance took the single-instance lease over")
			stopRun(fmt.Errorf("%w: two instances must not share one FerretDB database", err))
		}
	}()

	master := []byte(cfg.Secret)
	if cfg.Secret == "" {
		if master, err = secret.LoadOrCreate(cfg.DataDir); err != nil {
			return err
		}
	}
	var previous []byte
	if cfg.SecretPrevious != "" {
		previous = []byte(cfg.SecretPrevious)
	}

	opts := service.Options{Secret: master, AdminToken: cfg.AdminToken, Log: log}
	if cfg.WidgetRateLimit > 0 {
		// Off is a nil interface, which the service reads as no limit.
		opts.WidgetLimiter = ratelimit.New(cfg.WidgetRateLimit)
	}
	opts.Profiles = profile.New(profile.Options{AllowPrivate: cfg.AllowPrivateNetworks, Observe: m.observeFetch})
	opts.ProfileMaxAge, opts.ProfileConcurrency = cfg.ProfileMaxAge, cfg.ProfileConcurrency
	eventsCtx, stopEvents := context.WithCancel(context.Background())
	defer stopEvents()
	opts.Events = followEvents(eventsCtx, log, st, eventSweepInterval)
	svc := service.New(st, opts)
	if err := checkSecret(ctx, log, svc, previous); err != nil {
		return err
	}
	if st.Embedded() && cfg.AdminToken == "" {
		demo, err := svc.EnsureDemoProject(ctx)
		if err != nil {
			return err
		}
		if demo != nil {
			// Shown once, like every secret key: this is how a first run gets a usable project.
			log.Info().Str("app_id", string(demo.Project.ID)).Str("secret_key", demo.SecretKey).
				Str("identity_secret", demo.IdentitySecret).
				Msg("created the Demo project; use its secret key as Agent-Secret-Key and its identity secret for userHash (neither is shown again)")
		}
	}

	go sweepExpired(ctx, log, svc)
	go retainOld(ctx, log, svc, cfg.Retention)
	if err := startWebhooks(eventsCtx, log, svc, cfg.AllowPrivateNetworks); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           withClientAddress(cfg.TrustedProxies, newServer(log, svc, st, m, withDemo(cfg.Demo))),
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
	storeOpen = false
	stopEvents() // ends the subscriptions, whose sockets the HTTP server's drain does not wait for
	return shutdown(log, cfg.ShutdownTimeout, srv, errc, svc, st, lease, stopLease, leaseDone, context.Cause(ctx))
}

// shutdown drains in-flight requests and background work, releases the lease and closes the
// store, all within timeout (KNOWN_SHUTDOWN_TIMEOUT), and writes the last log line. Requests
// still running when the drain's share of the timeout is over are cut off: they were not
// answered, so no acknowledged write is lost. cause is why Known stops.
func shutdown(log zerolog.Logger, timeout time.Duration, srv *http.Server, errc <-chan error, svc *service.Service,
	st *store.Store, lease *store.Lease, stopLease context.CancelFunc, leaseDone <-chan struct{}, cause error) error {
	start := time.Now()
	log.Info().Dur("timeout", timeout).Msg("shutting down: draining in-flight requests")
	deadline := start.Add(timeout)
	// Closing the store must fit in the timeout too.
	drainBy := deadline.Add(-min(timeout/5, 2*time.Second))
	dctx, cancel := context.WithDeadline(context.Background(), drainBy)
	defer cancel()
	drained := true
	if err := srv.Shutdown(dctx); err != nil {
		drained = false
		_ = srv.Close()
	}
	if err := svc.Wait(dctx); err != nil {
		drained = false
		log.Warn().Err(err).Msg("background profile fetches still running at shutdown")
	}
	// The process still has to exit after the store closes: leave it a moment of the timeout.
	cctx, cancel2 := context.WithDeadline(context.Background(), deadline.Add(-min(timeout/20, 500*time.Millisecond)))
	defer cancel2()
	stopLease()
	<-leaseDone
	if lease != nil {
		if err := lease.Release(cctx); err != nil {
			log.Warn().Err(err).Msg("releasing the single-instance lease")
		}
	}
	if err := st.Close(cctx); err != nil {
		log.Warn().Err(err).Msg("closing the store")
	}
	var err error
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	ev := log.Info()
	msg := "Known stopped: every in-flight request finished"
	if !drained {
		ev = log.Warn()
		msg = "Known stopped: requests still running at KNOWN_SHUTDOWN_TIMEOUT were cut off unanswered"
	}
	ev.Bool("drained", drained).Dur("elapsed", time.Since(start)).AnErr("error", err).Msg(msg)
	return err
}

// claimLease holds the single-instance lease on a FerretDB database (nil on MongoDB, or when
// KNOWN_FERRETDB_SHARED=unsafe): FerretDB does not apply concurrent updates of one document
// atomically, so a second instance would lose writes.
func claimLease(ctx context.Context, log zerolog.Logger, cfg config, st *store.Store) (*store.Lease, error) {
	if !st.FerretDB() {
		return nil, nil
	}
	if cfg.FerretDBShared {
		log.Warn().Msg("KNOWN_FERRETDB_SHARED=unsafe: not holding the single-instance lease; instances that write one document at once lose writes")
		return nil, nil
	}
	host, _ := os.Hostname()
	lease, err := st.ClaimLease(ctx, store.LeaseOptions{Holder: fmt.Sprintf("host %s, pid %d", host, os.Getpid()),
		TakeOver: st.Embedded(), Log: log})
	if errors.Is(err, store.ErrLeaseHeld) {
		return nil, fmt.Errorf("database %q is on FerretDB and is served by another Known instance: %w. "+
			"FerretDB does not apply concurrent updates of one document atomically, so several instances need MongoDB; "+
			"stop the other instance (KNOWN_FERRETDB_SHARED=unsafe overrides this check, for instances that never write one document at once)",
			cfg.Database, err)
	}
	return lease, err
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

// checkSecret refuses a KNOWN_SECRET that does not open what the database holds sealed, and
// rotates from KNOWN_SECRET_PREVIOUS when it is given.
func checkSecret(ctx context.Context, log zerolog.Logger, svc *service.Service, previous []byte) error {
	rep, err := svc.CheckSecret(ctx, previous)
	if err != nil {
		return err
	}
	if rep.Resealed > 0 {
		log.Info().Int("values", rep.Resealed).Msg("sealed the stored secrets again with the new KNOWN_SECRET; KNOWN_SECRET_PREVIOUS may now be removed")
	}
	if rep.PreviousUnused {
		log.Info().Msg("nothing is sealed with KNOWN_SECRET_PREVIOUS any more; it may be removed")
	}
	if rep.Unopened > 0 {
		log.Warn().Int("values", rep.Unopened).Msg("stored secrets that open with no known secret were left as they are (they cannot be used)")
	}
	return nil
}
