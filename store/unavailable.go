package store

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Unavailable reports whether err says that the database could not be reached or did not
// answer in time (no server to select, a broken connection, an operation timeout), as
// opposed to a fault of the request or of Known: the caller may try again later.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var sel topology.ServerSelectionError
	return errors.As(err, &sel) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) ||
		errors.Is(err, mongo.ErrClientDisconnected)
}
