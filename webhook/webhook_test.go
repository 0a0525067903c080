package webhook

import (
	"testing"
	"time"
)

// TestBackoffIsAtLeastEightAttemptsOverTwelveHours: API.md §9 asks for at least 8 attempts
// over at least 12 hours, whatever the jitter; they outlast DisableAfter, stay within two
// days, and grow.
func TestBackoffIsAtLeastEightAttemptsOverTwelveHours(t *testing.T) {
	if MaxAttempts < 8 {
		t.Fatalf("MaxAttempts = %d", MaxAttempts)
	}
	for _, j := range []float64{0, 0.5, 0.999} {
		var all time.Duration
		for n := 1; n < MaxAttempts; n++ {
			if n > 1 && Backoff(n, j) < Backoff(n-1, j) {
				t.Fatalf("jitter %v: wait %d shorter than the one before", j, n)
			}
			all += Backoff(n, j)
		}
		if all < DisableAfter || all > 48*time.Hour {
			t.Fatalf("jitter %v: %d attempts span %v, want 24–48 h", j, MaxAttempts, all)
		}
	}
}
