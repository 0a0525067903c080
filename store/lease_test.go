package store_test

import (
	"context"
	"errors"
	"github.com/knownhq/known/clocktest"
	"strings"
	"testing"
	"time"

	"github.com/knownhq/known/store"
	"github.com/knownhq/known/store/storetest"
	"github.com/rs/zerolog"
)

// TestLease shows the single-instance lease's rules: one holder at a time; a second claim while
// the holder renews fails naming the holder; a lease whose holder stopped renewing is taken over
// once it expires, and its old holder then learns that it lost it; a released lease is claimed
// at once.
func TestLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := func(holder string, c *clocktest.Clock) store.LeaseOptions {
		o := store.LeaseOptions{TTL: 600 * time.Millisecond, Renew: 100 * time.Millisecond, Holder: holder, Log: zerolog.Nop()}
		if c != nil {
			o.Now = c.Now
		}
		return o
	}
	claim := func(t *testing.T, st *store.Store, o store.LeaseOptions) *store.Lease {
		t.Helper()
		l, err := st.ClaimLease(ctx, o)
		if err != nil {
			t.Fatalf("ClaimLease(%s): %v", o.Holder, err)
		}
		t.Cleanup(func() { _ = l.Release(context.Background()) })
		return l
	}

	t.Run("ASecondClaimWhileTheHolderRenewsFailsNamingIt", func(t *testing.T) {
		st := storetest.Open(t, nil)
		first := claim(t, st, opts("first-host pid 1", nil))
		kctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() { _ = first.Keep(kctx, zerolog.Nop()) }()
		start := time.Now()
		_, err := st.ClaimLease(ctx, opts("second", nil))
		if !errors.Is(err, store.ErrLeaseHeld) || !strings.Contains(err.Error(), "first-host pid 1") {
			t.Fatalf("a second claim = %v, want ErrLeaseHeld naming the holder", err)
		}
		if d := time.Since(start); d > 600*time.Millisecond {
			t.Errorf("the second claim took %v to fail, want at most the TTL", d)
		}
	})

	t.Run("AnExpiredLeaseIsTakenOverAndItsOldHolderLearnsIt", func(t *testing.T) {
		st := storetest.Open(t, nil)
		c := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		first := claim(t, st, opts("first", c))
		c.Advance(time.Second) // past the TTL without a renewal
		start := time.Now()
		claim(t, st, opts("second", c))
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("taking over an expired lease took %v, want no wait", d)
		}
		if err := first.Renew(ctx); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("the old holder's renewal = %v, want ErrLeaseLost", err)
		}
		kctx, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		if err := first.Keep(kctx, zerolog.Nop()); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("the old holder's Keep = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("ALeaseNobodyRenewsIsTakenOverAfterItsTTL", func(t *testing.T) {
		st := storetest.Open(t, nil)
		claim(t, st, opts("crashed", nil)) // never renewed: its process is gone
		start := time.Now()
		claim(t, st, opts("restarted", nil))
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the claim took %v, want about the TTL", d)
		}
	})

	t.Run("AReleasedLeaseIsClaimedAtOnce", func(t *testing.T) {
		st := storetest.Open(t, nil)
		first, err := st.ClaimLease(ctx, opts("first", nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := first.Release(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		claim(t, st, opts("second", nil))
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("claiming a released lease took %v, want no wait", d)
		}
	})

	t.Run("TakeOverClaimsAHeldLeaseAtOnce", func(t *testing.T) {
		st := storetest.Open(t, nil)
		first := claim(t, st, opts("first", nil))
		o := opts("embedded", nil)
		o.TakeOver = true
		claim(t, st, o)
		if err := first.Renew(ctx); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("the old holder's renewal = %v, want ErrLeaseLost", err)
		}
	})
}
