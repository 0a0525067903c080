package rest

import (
	"errors"
	"net/http"
	"time"

	"github.com/knownhq/known"
	"github.com/knownhq/known/graph/scalar"
	"github.com/knownhq/known/service"
)

// Seed 002's widget routes: the body carries app_id (identify) and later calls the
// X-Widget-Session token, as the GraphQL widget mutations do.

// identifyRequest is seed 002's identify payload, with the rest of GraphQL's identify in the
// same naming (first_name, phone_number, jwt, identification_token, …).
type identifyRequest struct {
	AppID               *string         `json:"app_id"`
	VisitorID           *string         `json:"visitor_id"`
	UserID              *customerID     `json:"user_id"`
	Email               *string         `json:"email"`
	Name                *string         `json:"name"`
	FirstName           *string         `json:"first_name"`
	LastName            *string         `json:"last_name"`
	PhoneNumber         *string         `json:"phone_number"`
	AvatarURL           *string         `json:"avatar_url"`
	Metadata            map[string]any  `json:"metadata"`
	Company             *companyRequest `json:"company"`
	CompanyIDs          []string        `json:"company_ids"`
	StageMode           *string         `json:"stage_mode"`
	UserHash            *string         `json:"user_hash"`
	JWT                 *string         `json:"jwt"`
	IdentificationToken *string         `json:"identification_token"`
}

type companyRequest struct {
	ID       string         `json:"id"`
	Name     *string        `json:"name"`
	Stage    *string        `json:"stage"`
	Metadata map[string]any `json:"metadata"`
}

// sessionAnswer is a widget session in seed 002's naming. UserID is Known's global id of the
// user, as GraphQL's WidgetSession.userId.
type sessionAnswer struct {
	Token     string    `json:"token"`
	VisitorID string    `json:"visitor_id"`
	UserID    *string   `json:"user_id"`
	Anonymous bool      `json:"anonymous"`
	Verified  bool      `json:"verified"`
	ExpiresAt time.Time `json:"expires_at"`
}

type sessionBody struct {
	Session sessionAnswer `json:"session"`
}

func session(s *known.Session) sessionBody {
	return sessionBody{sessionAnswer{Token: s.Token, VisitorID: string(s.VisitorID), UserID: s.PublicUserID(),
		Anonymous: s.Anonymous(), Verified: s.Verified(), ExpiresAt: s.ExpiresAt.UTC()}}
}

func (a *API) identify(r *http.Request) (answer, error) {
	var in identifyRequest
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	if err := required("app_id", in.AppID != nil && *in.AppID != ""); err != nil {
		return answer{}, err
	}
	mode, err := stageMode(in.StageMode)
	if err != nil {
		return answer{}, err
	}
	si := service.IdentifyInput{
		AppID: *in.AppID, VisitorID: in.VisitorID, UserID: in.UserID.str(), Email: in.Email, Name: in.Name,
		FirstName: in.FirstName, LastName: in.LastName, PhoneNumber: in.PhoneNumber, AvatarURL: in.AvatarURL,
		Metadata: in.Metadata, CompanyIDs: in.CompanyIDs, StageMode: mode,
		UserHash: in.UserHash, JWT: in.JWT, IdentificationToken: in.IdentificationToken,
	}
	if c := in.Company; c != nil {
		si.Company = &service.CompanyInput{ID: c.ID, Name: c.Name, Stage: c.Stage, Metadata: c.Metadata}
	}
	s, err := a.Service.Identify(r.Context(), si)
	if err != nil {
		return answer{}, err
	}
	return ok(session(s))
}

func stageMode(s *string) (*known.StageMode, error) {
	return enum("stage_mode", s, known.StageOverwrite, known.StageIfEmpty)
}

func (a *API) setProperties(r *http.Request) (answer, error) {
	var in struct {
		AppID      *string        `json:"app_id"`
		Properties map[string]any `json:"properties"`
	}
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	if err := required("properties", in.Properties != nil); err != nil {
		return answer{}, err
	}
	s, err := a.Service.SetProperties(r.Context(), in.AppID, in.Properties)
	if err != nil {
		return answer{}, err
	}
	return ok(session(s))
}

// eventAnswer is a tracked event: its global id, name and time.
type eventAnswer struct {
	ID         string    `json:"id"`
	Event      string    `json:"event"`
	OccurredAt time.Time `json:"occurred_at"`
}

func (a *API) track(r *http.Request) (answer, error) {
	var in struct {
		AppID      *string        `json:"app_id"`
		Event      *string        `json:"event"`
		Properties map[string]any `json:"properties"`
		CompanyID  *string        `json:"company_id"`
		OccurredAt *string        `json:"occurred_at"`
	}
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	if err := required("event", in.Event != nil); err != nil {
		return answer{}, err
	}
	ti := service.TrackInput{AppID: in.AppID, Event: *in.Event, Properties: in.Properties, CompanyID: in.CompanyID}
	if in.OccurredAt != nil {
		t, err := scalar.UnmarshalDateTime(*in.OccurredAt)
		if err != nil {
			return answer{}, onField("occurred_at", err)
		}
		ti.OccurredAt = &t
	}
	e, err := a.Service.Track(r.Context(), ti)
	if err != nil {
		return answer{}, err
	}
	return ok(map[string]eventAnswer{"event": {ID: known.GlobalID(known.KindEvent, string(e.ID)), Event: e.Name,
		OccurredAt: e.OccurredAt.UTC()}})
}

// companyAnswer names the company a call wrote, by the customer's own id. Its stage and deal
// are not answered: a widget reads no company record beyond what it sent (API.md §1).
type companyAnswer struct {
	ID string `json:"id"`
}

func company(c *known.Company) map[string]companyAnswer {
	return map[string]companyAnswer{"company": {ID: c.ExternalID}}
}

func (a *API) setStage(r *http.Request) (answer, error) {
	var in struct {
		AppID     *string `json:"app_id"`
		Stage     *string `json:"stage"`
		CompanyID *string `json:"company_id"`
		StageMode *string `json:"stage_mode"`
	}
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	if err := required("stage", in.Stage != nil); err != nil {
		return answer{}, err
	}
	mode, err := stageMode(in.StageMode)
	if err != nil {
		return answer{}, err
	}
	c, err := a.Service.SetStage(r.Context(), in.AppID, *in.Stage, in.CompanyID, mode)
	if err != nil {
		return answer{}, err
	}
	return ok(company(c))
}

func (a *API) setDeal(r *http.Request) (answer, error) {
	var in struct {
		AppID     *string  `json:"app_id"`
		CompanyID *string  `json:"company_id"`
		Name      *string  `json:"name"`
		Amount    *float64 `json:"amount"`
		Currency  *string  `json:"currency"`
		Stage     *string  `json:"stage"`
		Status    *string  `json:"status"`
	}
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	status, err := enum("status", in.Status, known.DealOpen, known.DealWon, known.DealLost)
	if err != nil {
		return answer{}, err
	}
	c, err := a.Service.SetDeal(r.Context(), service.SetDealInput{AppID: in.AppID, CompanyID: in.CompanyID,
		Name: in.Name, Amount: in.Amount, Currency: in.Currency, Stage: in.Stage, Status: status})
	if err != nil {
		return answer{}, err
	}
	return ok(company(c))
}

// onField puts the field on an error of the scalar decoders, which do not know it.
func onField(field string, err error) error {
	msg := err.Error()
	var e *known.Error
	if errors.As(err, &e) {
		msg = e.Message
	}
	return badInput(field, "%s: %s", field, msg)
}
