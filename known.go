// Package known holds Known's domain vocabulary: the objects a support inbox knows about
// (projects, users, organizations, companies, conversations, events), the identifiers that name
// them, and the one error type every layer speaks. It imports nothing of the project; the
// store, service, resolver and server packages all build on it.
package known

import "time"

// ProjectID names a project; it is also the project's public app id that widgets send.
type ProjectID string

// UserID is Known's own id of a user, unique across projects.
type UserID string

// ExternalID is the customer's own id of a user (seed 000 external_user_id, seed 001 fkId,
// seed 002 user_id, seed 003 id), always kept as a string.
type ExternalID string

// VisitorID names one browser's visitor; trusted only inside a session token Known issued.
type VisitorID string

// ConversationID, MessageID, EventID, CompanyID and OrganizationID are Known's ids of those
// objects, unique across projects.
type (
	ConversationID string
	MessageID      string
	EventID        string
	CompanyID      string
	OrganizationID string
)

// StageMode says how a company stage sent by a widget treats a stage already set.
type StageMode string

// Stage modes.
const (
	StageOverwrite StageMode = "OVERWRITE"
	StageIfEmpty   StageMode = "IF_EMPTY"
)

// VerificationMethod is the proof that verified a user or session.
type VerificationMethod string

// Verification methods.
const (
	VerifiedByHMAC  VerificationMethod = "HMAC"
	VerifiedByJWT   VerificationMethod = "JWT"
	VerifiedByToken VerificationMethod = "TOKEN"
)

// Project is one customer's installation: its users and conversations are invisible to every
// other project.
type Project struct {
	ID                  ProjectID
	Name                string
	RequireVerification bool
	StageMode           StageMode
	AllowedOrigins      []string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// User is a person a project knows: anonymous (only visitor ids), claimed or verified.
type User struct {
	ID                 UserID
	ProjectID          ProjectID
	ExternalID         *ExternalID
	FkUserID           *string
	VisitorIDs         []VisitorID
	Verified           bool
	VerificationMethod *VerificationMethod
	VerifiedAt         *time.Time
	Email              *string
	PhoneNumber        *string
	Name               *string
	FirstName          *string
	LastName           *string
	AvatarURL          *string
	Context            *string
	Source             *string
	Metadata           map[string]any
	OrganizationIDs    []OrganizationID
	CompanyIDs         []CompanyID
	ActiveCompanyID    *CompanyID
	CreatedAt          time.Time
	UpdatedAt          time.Time
	LastSeenAt         *time.Time
}

// Anonymous reports whether nothing but visitor ids identifies the user.
func (u *User) Anonymous() bool {
	return u.ExternalID == nil && u.Email == nil && u.PhoneNumber == nil
}

// Conversation is a thread between one visitor (and its user, once known) and the agents.
type Conversation struct {
	ID        ConversationID
	ProjectID ProjectID
	UserID    *UserID
	VisitorID VisitorID
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Page asks for one page of a list: at most First items after the cursor After ("" for the
// first page). Lists are newest first.
type Page struct {
	First int
	After string
}

// Caller is who sent a request, as established by its credential.
type Caller struct {
	// ProjectID is the project whose secret key the request carried, or "".
	ProjectID ProjectID
	// Admin is true when the request carried the operator's admin token.
	Admin bool
	// BadCredential is true when the request carried a key or token that matched nothing.
	BadCredential bool
}
