package store_test

import (
	"testing"

	"github.com/knownhq/known/store/storetest"
)

// TestMain starts one database for the store's tests; each test gets a fresh database on it.
func TestMain(m *testing.M) { storetest.Main(m) }
