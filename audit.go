package known

import "time"

// AuditAction is what an audit entry records.
type AuditAction string

// Audit actions. The list only grows: stored entries keep their action.
const (
	// AuditIdentityProven: a widget call proved an identity its user did not yet hold proven
	// by that method.
	AuditIdentityProven AuditAction = "IDENTITY_PROVEN"
	// AuditIdentityTaken: a proof took an identity from a user that had only claimed it.
	AuditIdentityTaken AuditAction = "IDENTITY_TAKEN"
	// AuditUserMerged: a session's anonymous record merged into the user it identified as.
	AuditUserMerged AuditAction = "USER_MERGED"
	// AuditUserDeleted: deleteUser erased a user.
	AuditUserDeleted AuditAction = "USER_DELETED"
	// AuditSecretKeyRotated: rotateSecretKey made a new secret key.
	AuditSecretKeyRotated AuditAction = "SECRET_KEY_ROTATED"
	// AuditIdentitySecretRotated: rotateIdentitySecret made a new identity secret.
	AuditIdentitySecretRotated AuditAction = "IDENTITY_SECRET_ROTATED"
	// AuditJwtKeyAdded: addJwtPublicKey uploaded a JWT public key.
	AuditJwtKeyAdded AuditAction = "JWT_KEY_ADDED"
	// AuditProjectDeleted: the operator deleted a project (an operator entry).
	AuditProjectDeleted AuditAction = "PROJECT_DELETED"
)

// ActorKind is the credential an audited change was made with.
type ActorKind string

// Actor kinds.
const (
	ActorWidget    ActorKind = "WIDGET"
	ActorSecretKey ActorKind = "SECRET_KEY"
	ActorAdmin     ActorKind = "ADMIN"
)

// Actor is who made an audited change: a widget session's visitor, a project's secret key,
// or the operator's admin token.
type Actor struct {
	Kind ActorKind
	// VisitorID is the widget session's visitor (widget actors only).
	VisitorID *VisitorID
}

// AuditEntry is one record of the audit log. Entries are only ever added, and hold ids, not
// personal values (no email or phone number): the log outlives a user's erasure.
type AuditEntry struct {
	ID string
	// ProjectID is the project the entry belongs to; "" for the operator's entries (project
	// deletions), which outlive their project.
	ProjectID ProjectID
	Action    AuditAction
	Actor     Actor
	// UserID is the user changed: verified, merged into, given an identity, or deleted.
	UserID *UserID
	// OtherUserID is the other side: the anonymous record merged in, or the user that lost
	// an identity.
	OtherUserID *UserID
	// Identity is the kind of identity proven or taken.
	Identity *IdentityKind
	// Method is the proof that made the change.
	Method *VerificationMethod
	// Subject names what else the change was about: the deleted project's app id, the JWT
	// key's id.
	Subject *string
	At      time.Time
}
