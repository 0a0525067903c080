package store

import (
	"context"
	"fmt"
	"time"

	"github.com/knownhq/known"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type projectDoc struct {
	ID                  string       `bson:"_id"`
	Name                string       `bson:"name"`
	RequireVerification bool         `bson:"requireVerification"`
	StageMode           string       `bson:"stageMode"`
	AllowedOrigins      []string     `bson:"allowedOrigins"`
	UserDataEndpoint    *endpointDoc `bson:"userDataEndpoint,omitempty"`
	IdentitySecrets     []sealed     `bson:"identitySecrets"`
	JwtKeys             []jwtKeyDoc  `bson:"jwtKeys"`
	CreatedAt           time.Time    `bson:"createdAt"`
	UpdatedAt           time.Time    `bson:"updatedAt"`
}

// sealed is a secret stored encrypted, with the time after which it no longer verifies
// (nil while it is the current one).
type sealed struct {
	Value     string     `bson:"value"`
	CreatedAt time.Time  `bson:"createdAt"`
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
}

// keyDoc maps the SHA-256 of a secret key to its project; its _id is the hash, so that
// authenticating a request is one lookup by _id.
type keyDoc struct {
	ID        string    `bson:"_id"`
	ProjectID string    `bson:"projectId"`
	CreatedAt time.Time `bson:"createdAt"`
	// ExpiresAt is when a key replaced by rotateSecretKey stops authenticating; nil while it
	// is current.
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
}

func (d *projectDoc) project() *known.Project {
	return &known.Project{
		ID:                  known.ProjectID(d.ID),
		Name:                d.Name,
		RequireVerification: d.RequireVerification,
		StageMode:           known.StageMode(d.StageMode),
		AllowedOrigins:      nonNil(d.AllowedOrigins),
		UserDataEndpoint:    d.UserDataEndpoint.endpoint(),
		CreatedAt:           d.CreatedAt,
		UpdatedAt:           d.UpdatedAt,
	}
}

// CreateProject stores a new project with the hash of its secret key and its sealed identity
// secret.
func (s *Store) CreateProject(ctx context.Context, p *known.Project, keyHash, sealedIdentitySecret string) error {
	doc := projectDoc{
		ID:                  string(p.ID),
		Name:                p.Name,
		RequireVerification: p.RequireVerification,
		StageMode:           string(p.StageMode),
		AllowedOrigins:      nonNil(p.AllowedOrigins),
		IdentitySecrets:     []sealed{{Value: sealedIdentitySecret, CreatedAt: p.CreatedAt}},
		JwtKeys:             []jwtKeyDoc{},
		CreatedAt:           p.CreatedAt,
		UpdatedAt:           p.UpdatedAt,
	}
	if _, err := s.projects.InsertOne(ctx, doc); err != nil {
		return fmt.Errorf("store: creating project: %w", err)
	}
	if _, err := s.projectKeys.InsertOne(ctx, keyDoc{ID: keyHash, ProjectID: doc.ID, CreatedAt: p.CreatedAt}); err != nil {
		// Without its key the project is unreachable: take it back.
		_, _ = s.projects.DeleteOne(context.WithoutCancel(ctx), bson.M{"_id": doc.ID})
		return fmt.Errorf("store: creating project key: %w", err)
	}
	return nil
}

// ProjectIDByKeyHash returns the project that owns the secret key with this hash as of now.
// It returns NotFound when no project does, or when the key expired (replaced by a rotation).
func (s *Store) ProjectIDByKeyHash(ctx context.Context, hash string, now time.Time) (known.ProjectID, error) {
	var d keyDoc
	if err := s.projectKeys.FindOne(ctx, bson.M{"_id": hash}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return "", notFound("key")
		}
		return "", fmt.Errorf("store: finding key: %w", err)
	}
	if d.ExpiresAt != nil && !now.Before(*d.ExpiresAt) {
		return "", notFound("key")
	}
	return known.ProjectID(d.ProjectID), nil
}

// Project returns the project with this id, or NotFound.
func (s *Store) Project(ctx context.Context, id known.ProjectID) (*known.Project, error) {
	var d projectDoc
	if err := s.projects.FindOne(ctx, bson.M{"_id": string(id)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, notFound("project")
		}
		return nil, fmt.Errorf("store: finding project: %w", err)
	}
	return d.project(), nil
}

// ProjectCount returns how many projects exist, counting at most limit.
func (s *Store) ProjectCount(ctx context.Context, limit int64) (int64, error) {
	n, err := s.projects.CountDocuments(ctx, bson.M{}, optsLimit(limit))
	if err != nil {
		return 0, fmt.Errorf("store: counting projects: %w", err)
	}
	return n, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ProjectUpdate changes project settings; nil fields stay as they are.
type ProjectUpdate struct {
	Name                *string
	RequireVerification *bool
	StageMode           *known.StageMode
	AllowedOrigins      *[]string
	// UserDataEndpoint, when set, replaces the endpoint's settings; its Headers, when nil,
	// keep the stored headers.
	UserDataEndpoint *EndpointUpdate
	UpdatedAt        time.Time
}

// UpdateProject applies up to project id and returns the project as it then is.
func (s *Store) UpdateProject(ctx context.Context, id known.ProjectID, up ProjectUpdate) (*known.Project, error) {
	set := bson.M{"updatedAt": up.UpdatedAt}
	if up.Name != nil {
		set["name"] = *up.Name
	}
	if up.RequireVerification != nil {
		set["requireVerification"] = *up.RequireVerification
	}
	if up.StageMode != nil {
		set["stageMode"] = string(*up.StageMode)
	}
	if up.AllowedOrigins != nil {
		set["allowedOrigins"] = nonNil(*up.AllowedOrigins)
	}
	if e := up.UserDataEndpoint; e != nil {
		set["userDataEndpoint.enabled"] = e.Enabled
		set["userDataEndpoint.url"] = e.URL
		set["userDataEndpoint.idPlacement"] = e.IDPlacement
		set["userDataEndpoint.queryParam"] = e.QueryParam
		if e.Headers != nil {
			set["userDataEndpoint.headers"] = nonNil(e.Headers)
		}
	}
	var d projectDoc
	defer s.serial.lock(s.projects, string(id))()
	err := s.projects.FindOneAndUpdate(ctx, bson.M{"_id": string(id)}, bson.M{"$set": set},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		if isNoDocuments(err) {
			return nil, notFound("project")
		}
		return nil, fmt.Errorf("store: updating project: %w", err)
	}
	return d.project(), nil
}

// SealedHeader is a user-API header whose value is stored sealed.
type SealedHeader struct {
	Name  string `bson:"name"`
	Value string `bson:"value"`
}

// EndpointUpdate is the new setting of a project's user-data endpoint.
type EndpointUpdate struct {
	Enabled     bool
	URL         string
	IDPlacement string
	QueryParam  string
	Headers     []SealedHeader // nil keeps the stored headers
}

type endpointDoc struct {
	Enabled       bool           `bson:"enabled"`
	URL           string         `bson:"url"`
	IDPlacement   string         `bson:"idPlacement"`
	QueryParam    string         `bson:"queryParam"`
	Headers       []SealedHeader `bson:"headers"`
	LastStatus    *string        `bson:"lastStatus,omitempty"`
	LastError     *string        `bson:"lastError,omitempty"`
	LastCheckedAt *time.Time     `bson:"lastCheckedAt,omitempty"`
}

func (d *endpointDoc) endpoint() *known.UserDataEndpoint {
	if d == nil {
		return nil
	}
	e := &known.UserDataEndpoint{Enabled: d.Enabled, URL: d.URL, IDPlacement: d.IDPlacement, QueryParam: d.QueryParam,
		HeaderNames: []string{}, LastStatus: (*known.ProfileStatus)(d.LastStatus), LastError: d.LastError, LastCheckedAt: d.LastCheckedAt}
	for _, h := range d.Headers {
		e.HeaderNames = append(e.HeaderNames, h.Name)
	}
	return e
}

// EndpointHeaders returns project p's user-data endpoint with its sealed headers (nil when
// the project has none).
func (s *Store) EndpointHeaders(ctx context.Context, p known.ProjectID) (*known.UserDataEndpoint, []SealedHeader, error) {
	var d struct {
		Endpoint *endpointDoc `bson:"userDataEndpoint"`
	}
	if err := s.projects.FindOne(ctx, bson.M{"_id": string(p)}).Decode(&d); err != nil {
		if isNoDocuments(err) {
			return nil, nil, notFound("project")
		}
		return nil, nil, fmt.Errorf("store: reading user-data endpoint: %w", err)
	}
	if d.Endpoint == nil {
		return nil, nil, nil
	}
	return d.Endpoint.endpoint(), d.Endpoint.Headers, nil
}

// RecordEndpointCheck records the outcome of the latest fetch from project p's user API.
func (s *Store) RecordEndpointCheck(ctx context.Context, p known.ProjectID, status known.ProfileStatus, errMsg *string, at time.Time) error {
	set := bson.M{"userDataEndpoint.lastStatus": string(status), "userDataEndpoint.lastCheckedAt": at}
	doc := bson.M{"$set": set}
	if errMsg != nil {
		set["userDataEndpoint.lastError"] = *errMsg
	} else {
		doc["$unset"] = bson.M{"userDataEndpoint.lastError": ""}
	}
	defer s.serial.lock(s.projects, string(p))()
	err := s.projects.FindOneAndUpdate(ctx, bson.M{"_id": string(p)}, doc).Err()
	if err != nil && !isNoDocuments(err) {
		return fmt.Errorf("store: recording user-data endpoint check: %w", err)
	}
	return nil
}
