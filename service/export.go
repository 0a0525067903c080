package service

import (
	"context"
	"slices"

	"github.com/knownhq/known"
)

// ExportFormat names the layout of exportUser's document, so that a reader can tell
// versions apart if fields are ever added.
const ExportFormat = "known.user-export.v1"

// ExportUser returns, as one JSON object, everything Known holds about a user of the caller's
// project (a data-access request, GDPR art. 15): its fields and metadata, its identities with
// provenance, organizations and companies, tracked events, conversations with every message,
// the profile fetched from the customer's user API, its widget sessions' visitor ids, and the
// audit entries about it. Ids are the GraphQL global ids. Secrets (session tokens, keys) are
// never in it. Errors: UNAUTHENTICATED, NOT_FOUND (also for another project's user).
func (s *Service) ExportUser(ctx context.Context, id known.UserID) (map[string]any, error) {
	p, err := known.ProjectFromContext(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.store.ExportUser(ctx, p, id)
	if err != nil {
		return nil, err
	}
	u := d.User
	gid := func(k known.Kind, id string) string { return known.GlobalID(k, id) }

	identities := []any{}
	for _, i := range u.Identities {
		identities = append(identities, map[string]any{"kind": i.Kind, "value": i.Value, "proven": i.Proven,
			"method": i.Method, "source": i.Source, "at": i.At})
	}
	visitors := slices.Clone(u.VisitorIDs)
	sessions := []any{}
	for _, ss := range d.Sessions {
		if !slices.Contains(visitors, ss.VisitorID) {
			visitors = append(visitors, ss.VisitorID)
		}
		sessions = append(sessions, map[string]any{"visitorId": ss.VisitorID, "level": ss.Level, "method": ss.Method,
			"createdAt": ss.CreatedAt, "expiresAt": ss.ExpiresAt, "endedAt": ss.RevokedAt})
	}
	orgs := []any{}
	for _, o := range d.Organizations {
		orgs = append(orgs, map[string]any{"id": gid(known.KindOrganization, string(o.ID)), "externalId": o.ExternalID,
			"name": o.Name, "attrs": o.Attrs})
	}
	companies := []any{}
	for _, c := range d.Companies {
		companies = append(companies, map[string]any{"id": gid(known.KindCompany, string(c.ID)), "externalId": c.ExternalID,
			"name": c.Name, "stage": c.Stage, "metadata": c.Metadata, "deal": dealJSON(c.Deal)})
	}
	events := []any{}
	for _, e := range d.Events {
		ev := map[string]any{"id": gid(known.KindEvent, string(e.ID)), "name": e.Name, "properties": e.Properties,
			"occurredAt": e.OccurredAt, "createdAt": e.CreatedAt, "companyId": nil}
		if e.CompanyID != nil {
			ev["companyId"] = gid(known.KindCompany, string(*e.CompanyID))
		}
		events = append(events, ev)
	}
	conversations := []any{}
	for _, c := range d.Conversations {
		msgs := []any{}
		for _, m := range d.Messages[c.ID] {
			msgs = append(msgs, map[string]any{"id": gid(known.KindMessage, string(m.ID)), "body": m.Body, "author": m.Author,
				"verified": m.Verified, "createdAt": m.CreatedAt})
		}
		conversations = append(conversations, map[string]any{"id": gid(known.KindConversation, string(c.ID)),
			"visitorId": c.VisitorID, "status": c.Status, "createdAt": c.CreatedAt, "updatedAt": c.UpdatedAt, "messages": msgs})
	}
	var profile any
	if pr := d.Profile; pr != nil {
		profile = map[string]any{"status": pr.Status, "firstName": pr.FirstName, "lastName": pr.LastName, "email": pr.Email,
			"phoneNumber": pr.PhoneNumber, "metadata": pr.Metadata, "fetchedAt": pr.FetchedAt, "checkedAt": pr.CheckedAt}
	}
	audit := []any{}
	for _, e := range d.Audit {
		audit = append(audit, auditJSON(e))
	}
	var active any
	if u.ActiveCompanyID != nil {
		active = gid(known.KindCompany, string(*u.ActiveCompanyID))
	}
	return map[string]any{
		"format":     ExportFormat,
		"exportedAt": s.clock(),
		"appId":      p,
		"user": map[string]any{
			"id": u.GlobalID(), "externalId": u.ExternalID, "fkUserId": u.FkUserID, "anonymous": u.Anonymous(),
			"verified": u.Verified, "verificationMethod": u.VerificationMethod, "verifiedAt": u.VerifiedAt,
			"email": u.Email, "phoneNumber": u.PhoneNumber, "name": u.Name, "firstName": u.FirstName, "lastName": u.LastName,
			"avatarUrl": u.AvatarURL, "context": u.Context, "source": u.Source, "metadata": u.Metadata,
			"activeCompanyId": active, "createdAt": u.CreatedAt, "updatedAt": u.UpdatedAt, "lastSeenAt": u.LastSeenAt,
		},
		"identities":      identities,
		"visitorIds":      visitors,
		"sessions":        sessions,
		"organizations":   orgs,
		"companies":       companies,
		"events":          events,
		"conversations":   conversations,
		"externalProfile": profile,
		"auditLog":        audit,
	}, nil
}

// auditJSON is an audit entry as an export shows it, with global user ids.
func auditJSON(e *known.AuditEntry) map[string]any {
	user := func(id *known.UserID) any {
		if id == nil {
			return nil
		}
		return known.GlobalID(known.KindUser, string(*id))
	}
	return map[string]any{"action": e.Action, "actor": map[string]any{"kind": e.Actor.Kind, "visitorId": e.Actor.VisitorID},
		"userId": user(e.UserID), "otherUserId": user(e.OtherUserID), "identity": e.Identity, "method": e.Method, "at": e.At}
}

func dealJSON(d *known.Deal) any {
	if d == nil {
		return nil
	}
	return map[string]any{"name": d.Name, "amount": d.Amount, "currency": d.Currency, "stage": d.Stage, "status": d.Status,
		"updatedAt": d.UpdatedAt}
}
