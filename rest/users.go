package rest

import (
	"net/http"
	"strings"

	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// Seed 001's /external/users, with the project's secret key in Agent-Secret-Key. fkId is
// Known's externalId; a user's id is the global id GraphQL uses.

// userAnswer is a user in seed 001's naming.
type userAnswer struct {
	ID          string         `json:"id"`
	FirstName   *string        `json:"firstName"`
	LastName    *string        `json:"lastName"`
	Context     *string        `json:"context"`
	Source      *string        `json:"source"`
	FkID        *string        `json:"fkId"`
	FkUserID    *string        `json:"fkUserId"`
	Email       *string        `json:"email"`
	PhoneNumber *string        `json:"phoneNumber"`
	Metadata    map[string]any `json:"metadata"`
}

// foundUser is search's answer: the user with its conversation ids.
type foundUser struct {
	*userAnswer
	ConversationIDs []string `json:"conversationIds"`
}

func user(u *known.User) *userAnswer {
	return &userAnswer{ID: known.GlobalID(known.KindUser, string(u.ID)), FirstName: u.FirstName, LastName: u.LastName,
		Context: u.Context, Source: u.Source, FkID: (*string)(u.ExternalID), FkUserID: u.FkUserID, Email: u.Email,
		PhoneNumber: u.PhoneNumber, Metadata: u.Metadata}
}

func (a *API) createUser(r *http.Request) (answer, error) {
	var in struct {
		Email       *string        `json:"email"`
		PhoneNumber *string        `json:"phoneNumber"`
		FirstName   *string        `json:"firstName"`
		LastName    *string        `json:"lastName"`
		Context     *string        `json:"context"`
		Source      *string        `json:"source"`
		FkID        *customerID    `json:"fkId"`
		FkUserID    *string        `json:"fkUserId"`
		Metadata    map[string]any `json:"metadata"`
	}
	if err := decode(r, &in); err != nil {
		return answer{}, err
	}
	u, err := a.Service.CreateUser(r.Context(), service.CreateUserInput{Email: in.Email, PhoneNumber: in.PhoneNumber,
		FirstName: in.FirstName, LastName: in.LastName, Context: in.Context, Source: in.Source,
		ExternalID: in.FkID.str(), FkUserID: in.FkUserID, Metadata: in.Metadata})
	if err != nil {
		return answer{}, err
	}
	out := user(u)
	return answer{status: http.StatusCreated, body: out, location: "/external/users/" + out.ID}, nil
}

// searchParams are the query parameters of GET /external/users/search, by the service's name.
var searchParams = map[string]string{"email": "email", "phoneNumber": "phoneNumber", "fkId": "externalId"}

// searchUsers answers the one user the parameters name, with its conversation ids: 404 when
// none does, and IDENTITY_CONFLICT when they name different users (the seed answers one
// user, and Known never guesses between two).
func (a *API) searchUsers(r *http.Request) (answer, error) {
	args := map[string]*string{}
	for name, values := range r.URL.Query() {
		as, isParam := searchParams[name]
		if !isParam {
			return answer{}, badInput(name, "%.40s is not a parameter of this search: use email, phoneNumber or fkId", name)
		}
		if len(values) != 1 {
			return answer{}, badInput(name, "%s is given %d times", name, len(values))
		}
		v := values[0]
		if as == "phoneNumber" && strings.HasPrefix(v, " ") {
			// An unencoded "+1415…" arrives as " 1415…" (a query's + is a space); no phone
			// number starts with a space, so it can only be the E.164 plus.
			v = "+" + v[1:]
		}
		args[as] = &v
	}
	matches, err := a.Service.SearchUsers(r.Context(), args["email"], args["phoneNumber"], args["externalId"])
	if err != nil {
		return answer{}, err
	}
	switch len(matches) {
	case 0:
		return answer{}, known.Errorf(known.NotFound, "no user matches")
	case 1:
		return ok(foundUser{user(matches[0].User), known.GlobalIDs(known.KindConversation, matches[0].ConversationIDs)})
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = known.GlobalID(known.KindUser, string(m.User.ID))
	}
	return answer{}, known.Errorf(known.IdentityConflict, "the parameters name different users: %s", strings.Join(ids, ", "))
}

// userID reads the {id} of the path: a user's global id, BAD_USER_INPUT otherwise.
func userID(r *http.Request) (known.UserID, error) {
	raw, err := known.ParseID([]string{"id"}, known.KindUser, r.PathValue("id"))
	return known.UserID(raw), err
}

func (a *API) user(r *http.Request) (answer, error) {
	id, err := userID(r)
	if err != nil {
		return answer{}, err
	}
	u, err := a.Service.User(r.Context(), id)
	if err != nil {
		return answer{}, err
	}
	return ok(user(u))
}

func (a *API) deleteUser(r *http.Request) (answer, error) {
	id, err := userID(r)
	if err != nil {
		return answer{}, err
	}
	if err := a.Service.DeleteUser(r.Context(), id); err != nil {
		return answer{}, err
	}
	return answer{status: http.StatusNoContent}, nil
}
