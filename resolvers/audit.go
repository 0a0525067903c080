package resolvers

import "github.com/knownhq/known"

// userGlobalID is the global id of a user that may no longer exist (an audit entry's).
func userGlobalID(id *known.UserID) *string {
	if id == nil {
		return nil
	}
	return ptr(known.GlobalID(known.KindUser, string(*id)))
}
