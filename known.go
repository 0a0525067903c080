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
	UserDataEndpoint    *UserDataEndpoint
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// IdentityKind is a kind of identity that names at most one user of a project.
type IdentityKind string

// Identity kinds.
const (
	IdentityExternalID IdentityKind = "EXTERNAL_ID"
	IdentityEmail      IdentityKind = "EMAIL"
	IdentityPhone      IdentityKind = "PHONE"
)

// IdentitySource says who asserted an identity: the widget (a visitor), the customer's backend
// through the secret key (createUser), or the customer's user API (a fetched profile).
type IdentitySource string

// Identity sources.
const (
	SourceWidget  IdentitySource = "WIDGET"
	SourceAPI     IdentitySource = "API"
	SourceProfile IdentitySource = "PROFILE"
)

// Identity is one identity of a user (API.md §3, "proof is per identity"): proven when a proof
// covered it, with the method and time of that proof; otherwise claimed, at the time it was
// first asserted. Value is the normalized key (an email lower-cased).
type Identity struct {
	Kind   IdentityKind
	Value  string
	Proven bool
	Method *VerificationMethod
	Source IdentitySource
	At     time.Time
}

// Covers reports whether a proof by method covers an identity of kind: a userHash the
// externalId it hashes (or the email when the claim has no externalId), a JWT the id and email
// it signs, an identification token its email. No proof covers a phone number.
func (m VerificationMethod) Covers(kind IdentityKind, hasExternalID bool) bool {
	switch m {
	case VerifiedByHMAC:
		return kind == IdentityExternalID || (kind == IdentityEmail && !hasExternalID)
	case VerifiedByJWT:
		return kind == IdentityExternalID || kind == IdentityEmail
	case VerifiedByToken:
		return kind == IdentityEmail
	}
	return false
}

// User is a person a project knows: anonymous (only visitor ids), claimed or verified.
// Verified, VerificationMethod and VerifiedAt derive from Identities: verified when at least
// one identity is proven, by the method and at the time of the latest proof.
type User struct {
	ID                 UserID
	ProjectID          ProjectID
	ExternalID         *ExternalID
	FkUserID           *string
	VisitorIDs         []VisitorID
	Identities         []Identity
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
	// Rev is the stored user's revision: a write that must not race another (identities,
	// metadata within its limit) is made only if the user is still at the revision it read.
	Rev int64
}

// Anonymous reports whether nothing but visitor ids identifies the user.
func (u *User) Anonymous() bool {
	return u.ExternalID == nil && u.Email == nil && u.PhoneNumber == nil
}

// Identity returns the user's identity of this kind, or nil.
func (u *User) Identity(kind IdentityKind) *Identity {
	for i := range u.Identities {
		if u.Identities[i].Kind == kind {
			return &u.Identities[i]
		}
	}
	return nil
}

// Holds reports whether the user has identity kind with this normalized value.
func (u *User) Holds(kind IdentityKind, value string) bool {
	id := u.Identity(kind)
	return id != nil && id.Value == value
}

// Derive sets Verified, VerificationMethod and VerifiedAt from the user's identities.
func (u *User) Derive() {
	u.Verified, u.VerificationMethod, u.VerifiedAt = false, nil, nil
	for _, id := range u.Identities {
		if id.Proven && (u.VerifiedAt == nil || id.At.After(*u.VerifiedAt)) {
			at := id.At
			u.Verified, u.VerificationMethod, u.VerifiedAt = true, id.Method, &at
		}
	}
}

// Organization is a group of users sent by setUser (seed 003), named by the customer's own id.
type Organization struct {
	ID         OrganizationID
	ProjectID  ProjectID
	ExternalID string
	Name       string
	Attrs      map[string]any
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Company is a CRM account linked to users by identify (seed 002), named by the customer's own id.
type Company struct {
	ID         CompanyID
	ProjectID  ProjectID
	ExternalID string
	Name       *string
	Stage      *string
	Metadata   map[string]any
	Deal       *Deal
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// DealStatus is where a deal stands.
type DealStatus string

// Deal statuses.
const (
	DealOpen DealStatus = "OPEN"
	DealWon  DealStatus = "WON"
	DealLost DealStatus = "LOST"
)

// Deal is the one open deal a company has (seed 002 setDeal).
type Deal struct {
	Name      *string
	Amount    *float64
	Currency  *string
	Stage     *string
	Status    *DealStatus
	UpdatedAt time.Time
}

// Event is a point-in-time milestone sent by track (seed 002).
type Event struct {
	ID         EventID
	ProjectID  ProjectID
	UserID     *UserID
	CompanyID  *CompanyID
	Name       string
	Properties map[string]any
	OccurredAt time.Time
	CreatedAt  time.Time
}

// ConversationStatus is whether a conversation is open.
type ConversationStatus string

// Conversation statuses.
const (
	ConversationOpen   ConversationStatus = "OPEN"
	ConversationClosed ConversationStatus = "CLOSED"
)

// Conversation is a thread between one visitor (and its user, once known) and the agents.
type Conversation struct {
	ID        ConversationID
	ProjectID ProjectID
	UserID    *UserID
	VisitorID VisitorID
	Status    ConversationStatus
	// Last is the newest message, nil before the first.
	Last *Message
	// MessageCount is how many messages the conversation has; -1 when not known.
	MessageCount int
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Author says who wrote a message.
type Author string

// Authors.
const (
	AuthorVisitor Author = "VISITOR"
	AuthorAgent   Author = "AGENT"
)

// Message is one message of a conversation. Verified records whether the visitor's session was
// verified when it was sent: the inbox's badge.
type Message struct {
	ID             MessageID
	ProjectID      ProjectID
	ConversationID ConversationID
	Body           string
	Author         Author
	Verified       bool
	CreatedAt      time.Time
}

// Node is an object with a global id (the GraphQL Node interface).
type Node interface {
	GlobalID() string
}

// GlobalID returns the project's global id.
func (p *Project) GlobalID() string { return GlobalID(KindProject, string(p.ID)) }

// GlobalID returns the user's global id.
func (u *User) GlobalID() string { return GlobalID(KindUser, string(u.ID)) }

// GlobalID returns the organization's global id.
func (o *Organization) GlobalID() string { return GlobalID(KindOrganization, string(o.ID)) }

// GlobalID returns the company's global id.
func (c *Company) GlobalID() string { return GlobalID(KindCompany, string(c.ID)) }

// GlobalID returns the event's global id.
func (e *Event) GlobalID() string { return GlobalID(KindEvent, string(e.ID)) }

// GlobalID returns the conversation's global id.
func (c *Conversation) GlobalID() string { return GlobalID(KindConversation, string(c.ID)) }

// GlobalID returns the message's global id.
func (m *Message) GlobalID() string { return GlobalID(KindMessage, string(m.ID)) }

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
	// KeyHash is the hash of the secret key that named ProjectID: a subscription, which
	// outlives the request that started it, checks that the key still names the project.
	KeyHash string
}

// Level is how far a widget session's identity is established.
type Level string

// Levels: anonymous → claimed (identity asserted without proof) → verified (proof checked).
const (
	LevelAnonymous Level = "anonymous"
	LevelClaimed   Level = "claimed"
	LevelVerified  Level = "verified"
)

// Session is a widget session: one browser's visitor, and how far its identity is established.
// The user it acts for is the owner of its visitor id.
type Session struct {
	ID        string
	ProjectID ProjectID
	VisitorID VisitorID
	Level     Level
	Method    *VerificationMethod
	// UserID is the user the session is identified as (nil while anonymous).
	UserID    *UserID
	Token     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Verified reports whether the session's identity was proven.
func (s *Session) Verified() bool { return s.Level == LevelVerified }

// Anonymous reports whether the session has asserted no identity.
func (s *Session) Anonymous() bool { return s.Level == LevelAnonymous }

// JwtKey is a public key a project uploaded to verify widget JWTs. ExpiresAt is nil while it
// is the current key; a replaced key keeps verifying until then.
type JwtKey struct {
	ID        string
	Algorithm string
	PEM       string
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// IdentificationToken is a short-lived proof that the customer's backend vouches for an email
// (seed 004). Only its hash is stored.
type IdentificationToken struct {
	ProjectID ProjectID
	EmailKey  string
	FirstName *string
	LastName  *string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ProfileStatus is the outcome of fetching a user's profile from the customer's user API
// (seed 000).
type ProfileStatus string

// Profile statuses.
const (
	ProfilePending      ProfileStatus = "PENDING"
	ProfileFound        ProfileStatus = "FOUND"
	ProfileNotFound     ProfileStatus = "NOT_FOUND"
	ProfileUnauthorized ProfileStatus = "UNAUTHORIZED"
	ProfileError        ProfileStatus = "ERROR"
	ProfileTimeout      ProfileStatus = "TIMEOUT"
)

// UserDataEndpoint is where a project's user API answers (seed 000). Header values are
// write-only and never leave the store unsealed except to make the request.
type UserDataEndpoint struct {
	Enabled       bool
	URL           string
	IDPlacement   string // PATH or QUERY
	QueryParam    string
	HeaderNames   []string
	LastStatus    *ProfileStatus
	LastError     *string
	LastCheckedAt *time.Time
}

// Profile is a user's profile as the customer's user API last gave it. FetchedAt is the last
// successful fetch; CheckedAt the last attempt, whatever its outcome.
type Profile struct {
	UserID      UserID
	ProjectID   ProjectID
	Status      ProfileStatus
	FirstName   *string
	LastName    *string
	Email       *string
	PhoneNumber *string
	Metadata    map[string]any
	FetchedAt   *time.Time
	CheckedAt   time.Time
	// Applied identifies the found profile last applied to the user (a hash of its data), ""
	// before any: a profile fetched again unchanged is not applied again.
	Applied string
}

// Header is an HTTP header sent to a user API.
type Header struct {
	Name  string
	Value string
}
