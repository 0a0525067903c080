package rest

import (
	"net/http"
	"time"
)

// Seed 004's visitor identification token, with the project's secret key as
// Authorization: Bearer.

func (a *API) createToken(r *http.Request) (answer, error) {
	var in struct {
		Email     *string `json:"email"`
		FirstName *string `json:"firstName"`
		LastName  *string `json:"lastName"`
	}
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	if err := required("email", in.Email != nil); err != nil {
		return answer{}, err
	}
	token, expires, err := a.Service.CreateIdentificationToken(r.Context(), *in.Email, in.FirstName, in.LastName)
	if err != nil {
		return answer{}, err
	}
	return ok(tokenAnswer{Token: token, ExpiresAt: expires.UTC()})
}

// tokenAnswer is seed 004's answer, with the time the token stops working (12 hours on).
type tokenAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}
