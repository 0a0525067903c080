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
