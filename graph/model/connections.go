package model

import "github.com/knownhq/known"

// The Relay connections and their page info are written here rather than generated, so that
// a page makes its edges and cursors only when a query selects them: an inbox page selects
// nodes and hasNextPage of a connection on every row, and an edge and an encoded cursor per
// item would be work and garbage for nothing (issue 10). gqlgen.yml binds the schema's
// connection types and PageInfo to these; their edges, startCursor and endCursor are methods.

// Cursors makes the opaque cursor of the i-th item of a page.
type Cursors func(i int) string

// PageInfo is where a page sits in its list.
type PageInfo struct {
	// Whether more items follow this page.
	HasNextPage bool
	// Whether items come before this page in the list.
	HasPreviousPage bool

	n      int
	cursor Cursors
}

// NewPageInfo returns the page info of a page of n items, followed by more when more is true,
// whose cursors cursor makes when asked.
func NewPageInfo(n int, more bool, cursor Cursors) *PageInfo {
	return &PageInfo{HasNextPage: more, n: n, cursor: cursor}
}

// Cursor returns the cursor of the page's i-th item.
func (p *PageInfo) Cursor(i int) string { return p.cursor(i) }

// StartCursor returns the cursor of the page's first item, nil when the page is empty.
func (p *PageInfo) StartCursor() *string { return p.cursorAt(0) }

// EndCursor returns the cursor of the page's last item, nil when the page is empty.
func (p *PageInfo) EndCursor() *string { return p.cursorAt(p.n - 1) }

func (p *PageInfo) cursorAt(i int) *string {
	if p.n == 0 {
		return nil
	}
	c := p.cursor(i)
	return &c
}

// edges pairs each node with its cursor.
func edges[N any, E any](nodes []N, p *PageInfo, edge func(cursor string, node N) E) []E {
	out := make([]E, len(nodes))
	for i, n := range nodes {
		out[i] = edge(p.Cursor(i), n)
	}
	return out
}

// AuditEntryConnection is a page of audit entries.
type AuditEntryConnection struct {
	Nodes    []*known.AuditEntry
	PageInfo *PageInfo
}

// Edges returns the page's entries with their cursors.
func (c *AuditEntryConnection) Edges() []*AuditEntryEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.AuditEntry) *AuditEntryEdge {
		return &AuditEntryEdge{Cursor: cur, Node: n}
	})
}

// CompanyConnection is a page of companies.
type CompanyConnection struct {
	Nodes    []*known.Company
	PageInfo *PageInfo
}

// Edges returns the page's companies with their cursors.
func (c *CompanyConnection) Edges() []*CompanyEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.Company) *CompanyEdge {
		return &CompanyEdge{Cursor: cur, Node: n}
	})
}

// ConversationConnection is a page of conversations.
type ConversationConnection struct {
	Nodes    []*known.Conversation
	PageInfo *PageInfo
}

// Edges returns the page's conversations with their cursors.
func (c *ConversationConnection) Edges() []*ConversationEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.Conversation) *ConversationEdge {
		return &ConversationEdge{Cursor: cur, Node: n}
	})
}

// EventConnection is a page of events.
type EventConnection struct {
	Nodes    []*known.Event
	PageInfo *PageInfo
}

// Edges returns the page's events with their cursors.
func (c *EventConnection) Edges() []*EventEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.Event) *EventEdge {
		return &EventEdge{Cursor: cur, Node: n}
	})
}

// MessageConnection is a page of messages.
type MessageConnection struct {
	Nodes    []*known.Message
	PageInfo *PageInfo
}

// Edges returns the page's messages with their cursors.
func (c *MessageConnection) Edges() []*MessageEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.Message) *MessageEdge {
		return &MessageEdge{Cursor: cur, Node: n}
	})
}

// OrganizationConnection is a page of organizations.
type OrganizationConnection struct {
	Nodes    []*known.Organization
	PageInfo *PageInfo
}

// Edges returns the page's organizations with their cursors.
func (c *OrganizationConnection) Edges() []*OrganizationEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.Organization) *OrganizationEdge {
		return &OrganizationEdge{Cursor: cur, Node: n}
	})
}

// ProjectConnection is a page of projects.
type ProjectConnection struct {
	Nodes    []*known.Project
	PageInfo *PageInfo
}

// Edges returns the page's projects with their cursors.
func (c *ProjectConnection) Edges() []*ProjectEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.Project) *ProjectEdge {
		return &ProjectEdge{Cursor: cur, Node: n}
	})
}

// UserConnection is a page of users.
type UserConnection struct {
	Nodes    []*known.User
	PageInfo *PageInfo
}

// Edges returns the page's users with their cursors.
func (c *UserConnection) Edges() []*UserEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.User) *UserEdge {
		return &UserEdge{Cursor: cur, Node: n}
	})
}

// WebhookDeliveryConnection is a page of webhook deliveries.
type WebhookDeliveryConnection struct {
	Nodes    []*known.WebhookDelivery
	PageInfo *PageInfo
}

// Edges returns the page's deliveries with their cursors.
func (c *WebhookDeliveryConnection) Edges() []*WebhookDeliveryEdge {
	return edges(c.Nodes, c.PageInfo, func(cur string, n *known.WebhookDelivery) *WebhookDeliveryEdge {
		return &WebhookDeliveryEdge{Cursor: cur, Node: n}
	})
}
