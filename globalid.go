package known

import (
	"encoding/base64"
	"strings"
)

// Kind is the type of object a global id names.
type Kind string

// Kinds of objects that have global ids (the GraphQL Node types).
const (
	KindProject      Kind = "Project"
	KindUser         Kind = "User"
	KindOrganization Kind = "Organization"
	KindCompany      Kind = "Company"
	KindConversation Kind = "Conversation"
	KindMessage      Kind = "Message"
	KindEvent        Kind = "Event"
)

// GlobalID returns the opaque public id of an object: clients must not take it apart, which
// leaves Known free to change what stands behind it.
func GlobalID(k Kind, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(k) + ":" + id))
}

// ParseGlobalID returns the kind and id inside a global id, and false when s is not one.
func ParseGlobalID(s string) (Kind, string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", "", false
	}
	k, id, ok := strings.Cut(string(raw), ":")
	if !ok || id == "" {
		return "", "", false
	}
	switch Kind(k) {
	case KindProject, KindUser, KindOrganization, KindCompany, KindConversation, KindMessage, KindEvent:
		return Kind(k), id, true
	}
	return "", "", false
}

// GlobalIDs returns the global ids of objects of kind k.
func GlobalIDs[T ~string](k Kind, ids []T) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = GlobalID(k, string(id))
	}
	return out
}

// ParseID returns the raw id inside a global id of kind k. A string that is no global id, or
// the id of another kind of object, is BAD_USER_INPUT naming field.
func ParseID(field []string, k Kind, id string) (string, error) {
	kind, raw, ok := ParseGlobalID(id)
	if !ok {
		return "", &Error{Code: BadUserInput, Message: "not a Known id", Field: field}
	}
	if kind != k {
		return "", &Error{Code: BadUserInput, Message: "the id of a " + string(kind) + ", not of a " + string(k), Field: field}
	}
	return raw, nil
}

// PublicUserID returns the global id of the user the session is identified as, or nil while
// it is anonymous: what every API answers as the session's user id.
func (s *Session) PublicUserID() *string {
	if s.Anonymous() || s.UserID == nil {
		return nil
	}
	id := GlobalID(KindUser, string(*s.UserID))
	return &id
}
