package service_test

import (
	"crypto/ed25519"
	"flag"
	"fmt"
	"github.com/knownhq/known/clocktest"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/knownhq/known"
	"github.com/knownhq/known/service"
)

// The property test of the identity engine (issue 8, point 3; API.md §3 "Proof is per
// identity"): random sequences of identify / setUser / proof calls by a few actors, each of
// which owns one externalId and one email and can prove only those (a userHash of its own id,
// or of its own email; an identification token of its own email; a JWT signing its own id
// and/or email), while it claims whatever it likes (others' ids and emails, other case,
// look-alike characters, phones), starts conversations, writes to any conversation id it has
// seen, logs out, resets sessions and uses up to three browsers. After every call that
// succeeds (a rejected one must change nothing, which the next check would show), and at the
// end, the project is read back through the service and these invariants are checked:
//
//  1. No actor reads or writes another's history through an identity it did not prove: every
//     conversation a browser's session lists, or sends a message to, was started by the actor
//     or belongs to a user that holds proven an identity this actor proved; and no call of the
//     actor lands on, or starts a conversation on, a user holding another actor's proven
//     identity.
//  2. No identity (kind, value) is held by two users, and no user holds proven identities of
//     two actors.
//  3. An acknowledged proof is never lost: once a call proving identity X succeeded and put X
//     proven on user U, U keeps X proven, unless X's owner itself later replaced it on U (a
//     successful call of the owner that landed on U with another value of X's kind).
//  4. A proof belongs to whoever proves it: a call that proves only its actor's own identities,
//     and claims nothing else, is never refused because of a user that only claimed them (it
//     may be when the actor's own identities are proven on two different users).
//
// Every error must be a user error code, never an internal error, and every proof call that
// succeeds leaves its session verified on a user holding what it proved.
//
// Each sequence runs as a subtest on a database of its own. A failure prints the seed, the
// sequence's steps with what each answered, and (for the first failing sequence) the shortest
// sub-sequence found that still fails. Replay sequence 17 of seed 8 with
//
//	go test ./service/ -run 'TestPropertyProofIsPerIdentity/seq017$' -v -args -property.seed=8 -property.runs=18

var (
	propertySeed = flag.Uint64("property.seed", 8, "identity property test: the seed of the sequences")
	propertyRuns = flag.Int("property.runs", 0, "identity property test: how many sequences (0: 200; 60 under -race; 4 with -short)")
	propertyLog  = flag.Bool("property.log", false, "identity property test: log every sequence's steps")
)

var propertyNames = []string{"kate", "bob", "anna", "max"}

// TestPropertyProofIsPerIdentity: whatever actors claim, and in whatever order they prove their
// own identities, no one reads another's conversations through an identity they did not
// prove, no identity is held twice, and no acknowledged proof is lost.
func TestPropertyProofIsPerIdentity(t *testing.T) {
	runs, steps := 200, 30
	switch {
	case testing.Short():
		runs, steps = 4, 25
	case propRaceEnabled():
		runs = 60 // the race detector makes each call about five times slower
	}
	if *propertyRuns > 0 {
		runs = *propertyRuns
	}
	pub, priv := newEd25519(t)
	h := &propertyHarness{pub: pub, priv: priv}
	for _, c := range propertyCorpus {
		t.Run(c.name, func(t *testing.T) {
			h.runAndReport(t, c.seq, false, fmt.Sprintf("corpus sequence %s", c.name), fmt.Sprintf("'TestPropertyProofIsPerIdentity/%s$'", c.name))
		})
	}
	seed := *propertySeed
	for i := range runs {
		seq := propGenSequence(rand.New(rand.NewPCG(seed, uint64(i))), steps)
		t.Run(fmt.Sprintf("seq%03d", i), func(t *testing.T) {
			t.Parallel() // each on a database of its own
			h.runAndReport(t, seq, true, fmt.Sprintf("seed %d, sequence %d", seed, i),
				fmt.Sprintf("'TestPropertyProofIsPerIdentity/seq%03d$' -v -args -property.seed=%d -property.runs=%d", i, seed, i+1))
		})
	}
}

// propRaceEnabled reports whether the test binary was built with -race.
func propRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"})
}

// runAndReport runs a sequence and, when it breaks an invariant, fails with its steps and,
// when shrink is set, the shortest failing sequence found.
func (h *propertyHarness) runAndReport(t *testing.T, seq propSequence, shrink bool, what, replay string) {
	r := h.run(t, seq)
	if *propertyLog {
		t.Logf("%d actors:\n%s", seq.actors, strings.Join(r.log, "\n"))
	}
	if r.violation == "" {
		return
	}
	shortest := ""
	if shrink && h.shrunk.CompareAndSwap(false, true) { // shrinking is slow: the first failure only
		small := h.shrink(t, r)
		shortest = fmt.Sprintf("\n\nshortest failing sequence found (%d actors): %s\n%s", small.seq.actors, small.violation, strings.Join(small.log, "\n"))
	}
	t.Fatalf("identity property violated (%s): %s\n\nsteps (%d actors):\n%s%s\n\nreplay: go test ./service/ -run %s",
		what, r.violation, seq.actors, strings.Join(r.log, "\n"), shortest, replay)
}

// propertyCorpus are sequences that broke an invariant once, run before the random ones
// (under -short too), as a fuzz corpus is. Actors: 0 kate, 1 bob, 2 anna, 3 max.
var propertyCorpus = []struct {
	name string
	seq  propSequence
}{
	// Found by a random sequence: bob squats anna's id, proves his own email on that user,
	// replaces the email with anna's by a claim (his session stays verified, the user has no
	// proven identity left), and anna's unproven identify of her own id brings her
	// conversation to the user: bob's session reads it (invariant 1).
	{"ClaimStripsProofVerifiedSessionReadsClaimant", propSequence{actors: 3, steps: []propStep{
		{actor: 1, op: propIdentify, ext: propExt(2), email: propEmail(1)},
		{actor: 1, op: propIdentify, proof: propJWT, jwtEmail: true},
		{actor: 1, op: propIdentify, ext: propExt(2), email: propEmail(2)},
		{actor: 2, op: propStart},
		{actor: 2, op: propSetUser, ext: propExt(2)},
	}}},
	// Found by a random sequence: max proves his email, claims his id on a new user from the
	// same browser, then a JWT signing both his id and email is refused (IDENTITY_CONFLICT)
	// because of the user that only claimed the id (invariant 4).
	{"OwnClaimBlocksJWTOfIDAndEmail", propSequence{actors: 4, steps: []propStep{
		{actor: 3, op: propIdentify, email: propEmail(3), proof: propHashEmail},
		{actor: 3, op: propSetUser, ext: propExt(3), email: propEmail(1)},
		{actor: 3, op: propIdentify, ext: propExt(3), email: propEmail(3), proof: propJWT, jwtExt: true, jwtEmail: true},
	}}},
}

// Steps, as data: a sequence is generated before it runs, so that it can be replayed and
// shrunk. Browsers and conversations are named by index, taken modulo what exists when the
// step runs.

type propOp int

const (
	propIdentify propOp = iota
	propSetUser
	propLogout // setUser(id: null)
	propStart  // startConversation
	propSend   // sendMessage to any conversation id seen so far
	propReset  // resetSession
	propOpen   // a new browser: a fresh anonymous session
)

type propProof int

const (
	propNoProof propProof = iota
	propHashExt
	propHashEmail
	propToken
	propJWT
)

type propStep struct {
	actor, browser int
	op             propOp
	// ext, email and phone are what the input sends ("" leaves a field out): the actor's own
	// or another actor's identities, an email in other case or spelled with look-alike
	// characters.
	ext, email, phone string
	proof             propProof
	// jwtExt and jwtEmail: which of the actor's own identities its JWT signs.
	jwtExt, jwtEmail bool
	conv             int
}

type propSequence struct {
	actors int
	steps  []propStep
}

// propGenSequence makes a sequence of n steps by 2 or 3 actors.
func propGenSequence(r *rand.Rand, n int) propSequence {
	seq := propSequence{actors: 2 + r.IntN(2)}
	pick := func(p float64) bool { return r.Float64() < p }
	// anyone's identity, the actor's own half of the time
	who := func(self int) int {
		if pick(0.5) {
			return self
		}
		return r.IntN(seq.actors)
	}
	email := func(of int) string {
		e := propEmail(of)
		switch x := r.Float64(); {
		case x < 0.15:
			return strings.ToUpper(e[:1]) + e[1:]
		case x < 0.2:
			return propLookAlike(e)
		}
		return e
	}
	prev := propStep{actor: r.IntN(seq.actors)}
	for range n {
		s := propStep{actor: r.IntN(seq.actors), browser: r.IntN(3), conv: r.IntN(64)}
		if pick(0.5) {
			// Half the time the same browser acts again: attacks are several calls in a row.
			s.actor, s.browser = prev.actor, prev.browser
		}
		a := s.actor
		switch x := r.Float64(); {
		case x < 0.45:
			s.op = propIdentify
			switch y := r.Float64(); {
			case y < 0.5: // claims only
				if pick(0.6) {
					s.ext = propExt(who(a))
				}
				if pick(0.6) {
					s.email = email(who(a))
				}
				if pick(0.1) {
					s.phone = propPhone(r.IntN(3))
				}
			case y < 0.65: // userHash of the own externalId, maybe with a claimed email
				s.proof, s.ext = propHashExt, propExt(a)
				if pick(0.05) {
					s.ext = propExt(r.IntN(seq.actors)) // the own hash sent with another id
				}
				if pick(0.5) {
					s.email = email(who(a))
				}
			case y < 0.75: // userHash of the own email
				s.proof, s.email = propHashEmail, email(a)
			case y < 0.88: // identification token of the own email, maybe with a claimed id
				s.proof, s.email = propToken, email(a)
				if pick(0.05) {
					s.email = email(r.IntN(seq.actors)) // the own token sent with another email
				}
				if pick(0.5) {
					s.ext = propExt(who(a))
				}
			default: // a JWT signing the own id and/or email; unsigned input fields ride along
				s.proof = propJWT
				s.jwtExt = pick(0.7)
				s.jwtEmail = !s.jwtExt || pick(0.5)
				if pick(0.3) {
					s.ext = propExt(r.IntN(seq.actors))
				}
				if pick(0.3) {
					s.email = email(r.IntN(seq.actors))
				}
			}
		case x < 0.6:
			s.op = propSetUser
			s.ext = propExt(who(a))
			if pick(0.5) {
				s.email = email(who(a))
			}
			switch y := r.Float64(); {
			case y < 0.3:
				s.proof, s.ext = propHashExt, propExt(a)
			case y < 0.5:
				s.proof = propJWT
				s.jwtExt = pick(0.7)
				s.jwtEmail = !s.jwtExt || pick(0.5)
			}
		case x < 0.64:
			s.op = propLogout
		case x < 0.78:
			s.op = propStart
		case x < 0.88:
			s.op = propSend
		case x < 0.94:
			s.op = propReset
		default:
			s.op = propOpen
		}
		seq.steps = append(seq.steps, s)
		prev = s
	}
	return seq
}

func propExt(i int) string   { return "u-" + propertyNames[i] }
func propEmail(i int) string { return propertyNames[i] + "@example.com" }
func propPhone(i int) string { return fmt.Sprintf("+1415555010%d", i) }

// propLookAlike spells an email with a character that NFKC folds to a letter of it (KELVIN SIGN
// for k, a fullwidth letter otherwise): Known must refuse it rather than match the real one.
func propLookAlike(e string) string {
	if strings.Contains(e, "k") {
		return strings.Replace(e, "k", "\u212A", 1)
	}
	r, n := utf8.DecodeRuneInString(e)
	return string(r-'a'+'\uFF41') + e[n:]
}

func (s propStep) String() string {
	b := fmt.Sprintf("%s#%d ", propertyNames[s.actor], s.browser)
	var fields []string
	add := func(name, v string) {
		if v != "" {
			fields = append(fields, fmt.Sprintf("%s=%+q", name, v))
		}
	}
	switch s.op {
	case propIdentify, propSetUser:
		if s.op == propIdentify {
			b += "identify"
			add("userId", s.ext)
		} else {
			b += "setUser"
			add("id", s.ext)
		}
		add("email", s.email)
		add("phoneNumber", s.phone)
		switch s.proof {
		case propHashExt:
			fields = append(fields, "userHash=hash("+propExt(s.actor)+")")
		case propHashEmail:
			fields = append(fields, "userHash=hash("+propEmail(s.actor)+")")
		case propToken:
			fields = append(fields, "identificationToken=token("+propEmail(s.actor)+")")
		case propJWT:
			var signed []string
			if s.jwtExt {
				signed = append(signed, "id="+propExt(s.actor))
			}
			if s.jwtEmail {
				signed = append(signed, "email="+propEmail(s.actor))
			}
			fields = append(fields, "jwt{"+strings.Join(signed, ",")+"}")
		}
		return b + "(" + strings.Join(fields, " ") + ")"
	case propLogout:
		return b + "setUser(id=null)"
	case propStart:
		return b + "startConversation"
	case propSend:
		return fmt.Sprintf("%ssendMessage(conversation #%d)", b, s.conv)
	case propReset:
		return b + "resetSession"
	}
	return b + "open a new browser"
}

// Running a sequence.

type propertyHarness struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	// shrunk is set once a failing sequence has been shrunk.
	shrunk atomic.Bool
}

type propResult struct {
	seq       propSequence
	violation string
	invariant int // 0: a bad error or answer; 1–4: the invariant broken
	log       []string
}

type propKey struct {
	kind  known.IdentityKind
	value string
}

func (k propKey) String() string { return fmt.Sprintf("%s %s", k.kind, k.value) }

type propActor struct {
	browsers []*known.Session // the session each browser last got (its token included)
	proved   map[propKey]bool
	token    string // identification token of the own email, made when first needed
}

type propAck struct {
	user  known.UserID
	actor int
}

// propRun is the state of one sequence: what each actor holds and what the service
// acknowledged.
type propRun struct {
	t       *testing.T
	h       *propertyHarness
	clock   *testClock
	e       *env
	kid     string
	actors  []*propActor
	convs   []known.ConversationID
	starter map[known.ConversationID]int
	ack     map[propKey]propAck
	labels  map[known.UserID]string
	jti     int
	log     []string
	// changed: the step's call succeeded, so the store may have changed.
	changed bool
}

// run runs a sequence on a database of its own (listings on the embedded store read every
// project's documents, so a shared database would slow each run down more than the last).
func (h *propertyHarness) run(t *testing.T, seq propSequence) propResult {
	e := newEnv(t)
	r := &propRun{t: t, h: h, e: e, kid: addKey(t, e, spkiPEM(t, h.pub), nil).ID,
		clock:   clocktest.New(time.Now().UTC()), // the JWTs' iat and exp
		starter: map[known.ConversationID]int{}, ack: map[propKey]propAck{}, labels: map[known.UserID]string{}}
	for range seq.actors {
		ss, err := identifyErr(e, "", service.IdentifyInput{})
		if err != nil {
			t.Fatalf("a first anonymous identify: %v", err)
		}
		r.actors = append(r.actors, &propActor{browsers: []*known.Session{ss}, proved: map[propKey]bool{}})
	}
	for i, s := range seq.steps {
		s.browser %= len(r.actors[s.actor].browsers) // the log names the browser used
		r.changed = false
		outcome, inv, v := r.do(s)
		r.log = append(r.log, fmt.Sprintf("%3d %s -> %s", i, s, outcome))
		if v == "" && (r.changed || i == len(seq.steps)-1) {
			// The store changes only when a call succeeds (a rejected input changes nothing):
			// the invariants are checked then, and at the end, so that a rejected call that
			// changed something anyway is caught by the next check.
			inv, v = r.check()
		}
		if v != "" {
			return propResult{seq: seq, violation: fmt.Sprintf("after step %d: %s", i, v), invariant: inv, log: r.log}
		}
	}
	return propResult{seq: seq, log: r.log}
}

// shrink looks for a shorter sequence that breaks the same invariant: it drops chunks of
// steps, halving the chunk down to single steps, while the failure persists.
func (h *propertyHarness) shrink(t *testing.T, first propResult) propResult {
	best := first
	for chunk := len(first.seq.steps) / 2; chunk >= 1; chunk /= 2 {
		for i := 0; i+chunk <= len(best.seq.steps); {
			cand := propSequence{actors: best.seq.actors, steps: slices.Concat(best.seq.steps[:i], best.seq.steps[i+chunk:])}
			var r propResult
			t.Run("shrink", func(t *testing.T) { r = h.run(t, cand) })
			if r.violation != "" && r.invariant == first.invariant {
				best = r
				continue
			}
			i++
		}
	}
	return best
}

// user labels: Known's ids are random, so the log names users U1, U2, … in order of
// appearance.
func (r *propRun) label(id *known.UserID) string {
	if id == nil {
		return "-"
	}
	l, ok := r.labels[*id]
	if !ok {
		l = fmt.Sprintf("U%d", len(r.labels)+1)
		r.labels[*id] = l
	}
	return l
}

func (r *propRun) sessionText(ss *known.Session) string {
	return fmt.Sprintf("ok %s %s", ss.Level, r.label(ss.UserID))
}

// propUserErrorCodes are the codes a rejected identity call may answer with.
var propUserErrorCodes = []known.Code{known.IdentityConflict, known.VerificationRequired, known.VerificationFailed,
	known.LimitExceeded, known.Invalid}

// propBadError says why err is not an acceptable rejection ("" when it is).
func propBadError(err error, also ...known.Code) string {
	es, other := known.UserErrors(err)
	if other != nil {
		return fmt.Sprintf("an error that is not a user error: %v", err)
	}
	for _, e := range es {
		if !slices.Contains(propUserErrorCodes, e.Code) && !slices.Contains(also, e.Code) {
			return fmt.Sprintf("error code %s: %v", e.Code, err)
		}
	}
	return ""
}

// do runs one step: what happened, and a violation (with its invariant) if the answer itself
// is wrong.
func (r *propRun) do(s propStep) (string, int, string) {
	a := r.actors[s.actor]
	b := s.browser % len(a.browsers)
	ctx := widgetCtx(a.browsers[b].Token)
	switch s.op {
	case propOpen:
		if len(a.browsers) == 3 {
			return "skipped: 3 browsers already", 0, ""
		}
		ss, err := identifyErr(r.e, "", service.IdentifyInput{})
		if err != nil {
			return err.Error(), 0, fmt.Sprintf("a new browser's anonymous identify failed: %v", err)
		}
		a.browsers = append(a.browsers, ss)
		r.changed = true
		return fmt.Sprintf("browser #%d", len(a.browsers)-1), 0, ""
	case propReset:
		ss, err := r.e.svc.ResetSession(ctx)
		if err != nil {
			return err.Error(), 0, fmt.Sprintf("resetSession failed: %v", err)
		}
		a.browsers[b] = ss
		r.changed = true
		return r.sessionText(ss), 0, ""
	case propStart:
		c, err := r.e.svc.StartConversation(ctx, nil, "hello from "+propertyNames[s.actor])
		if err != nil {
			return string(known.ErrorCode(err)), 0, propBadError(err)
		}
		r.starter[c.ID] = s.actor
		r.changed = true
		if c.UserID != nil {
			u, err := r.e.svc.User(r.e.ctx, *c.UserID)
			if err != nil {
				return "started", 0, fmt.Sprintf("reading the conversation's user: %v", err)
			}
			if v := r.othersProven(s.actor, u); v != "" {
				return "started", 1, "the conversation was written to " + v
			}
		}
		r.convs = append(r.convs, c.ID)
		return fmt.Sprintf("conversation #%d on %s", len(r.convs)-1, r.label(c.UserID)), 0, ""
	case propSend:
		if len(r.convs) == 0 {
			return "skipped: no conversation yet", 0, ""
		}
		i := s.conv % len(r.convs)
		_, err := r.e.svc.SendMessage(ctx, nil, r.convs[i], "hi")
		if err != nil {
			return fmt.Sprintf("conversation #%d: %s", i, known.ErrorCode(err)), 0, propBadError(err, known.NotFound)
		}
		c, err := r.e.svc.Conversation(r.e.ctx, r.convs[i])
		if err != nil {
			return "sent", 0, fmt.Sprintf("reading conversation #%d: %v", i, err)
		}
		users, err := r.users()
		if err != nil {
			return "sent", 0, err.Error()
		}
		if v := r.mayRead(s.actor, c, users); v != "" {
			return fmt.Sprintf("sent to conversation #%d", i), 1, fmt.Sprintf("%s#%d sent a message to %s", propertyNames[s.actor], b, v)
		}
		return fmt.Sprintf("sent to conversation #%d", i), 0, ""
	case propLogout:
		ss, err := setUserErr(r.e, a.browsers[b].Token, service.SetUserInput{})
		if err != nil {
			return string(known.ErrorCode(err)), 0, fmt.Sprintf("setUser(id: null) failed: %v", err)
		}
		a.browsers[b] = ss
		r.changed = true
		return r.sessionText(ss), 0, ""
	}
	return r.identity(s, a, b)
}

// identity runs an identify or setUser step and records what a success acknowledged.
func (r *propRun) identity(s propStep, a *propActor, b int) (string, int, string) {
	opt := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	var hash, tok, jwtText *string
	ownExt, ownEmail := propExt(s.actor), propEmail(s.actor)
	switch s.proof {
	case propHashExt:
		hash = str(hashOf(r.e.project.IdentitySecret, ownExt))
	case propHashEmail:
		hash = str(hashOf(r.e.project.IdentitySecret, ownEmail))
	case propToken:
		if a.token == "" {
			t, _, err := r.e.svc.CreateIdentificationToken(r.e.ctx, ownEmail, nil, nil)
			if err != nil {
				return err.Error(), 0, fmt.Sprintf("createIdentificationToken: %v", err)
			}
			a.token = t
		}
		tok = &a.token
	case propJWT:
		claims := map[string]any{}
		if s.jwtExt {
			claims["id"] = ownExt
		}
		if s.jwtEmail {
			claims["email"] = ownEmail
		}
		r.jti++
		if r.jti%2 == 0 {
			claims["jti"] = fmt.Sprintf("jti-%d", r.jti) // usable once, and used once
		}
		jwtText = str(signJWT(r.t, jwt.SigningMethodEdDSA, r.h.priv, r.kid, jwtClaims(r.clock, claims)))
	}
	// What the call asserted, and what its proof covers (API.md §3).
	var asserted, proven []propKey
	claim := func(kind known.IdentityKind, v string, covered bool) {
		if v == "" {
			return
		}
		k := propKey{kind, v}
		if kind == known.IdentityEmail {
			k.value = strings.ToLower(v)
		}
		asserted = append(asserted, k)
		if covered {
			proven = append(proven, k)
		}
	}
	switch s.proof {
	case propJWT:
		if s.jwtExt {
			claim(known.IdentityExternalID, ownExt, true)
		}
		if s.jwtEmail {
			claim(known.IdentityEmail, ownEmail, true)
		}
	default:
		claim(known.IdentityExternalID, s.ext, s.proof == propHashExt)
		claim(known.IdentityEmail, s.email, s.proof == propToken || s.proof == propHashEmail)
		claim(known.IdentityPhone, s.phone, false)
	}
	var ss *known.Session
	var err error
	if s.op == propIdentify {
		ss, err = identifyErr(r.e, r.actors[s.actor].browsers[b].Token, service.IdentifyInput{UserID: opt(s.ext), Email: opt(s.email),
			PhoneNumber: opt(s.phone), UserHash: hash, IdentificationToken: tok, JWT: jwtText})
	} else {
		ss, err = setUserErr(r.e, r.actors[s.actor].browsers[b].Token, service.SetUserInput{ID: opt(s.ext), Email: opt(s.email),
			UserHash: hash, JWT: jwtText})
	}
	if err != nil {
		if v := propBadError(err); v != "" {
			return string(known.ErrorCode(err)), 0, v
		}
		if v := r.refusedProof(s, asserted, proven, err); v != "" {
			return string(known.ErrorCode(err)), 4, fmt.Sprintf("%s: %v", v, err)
		}
		return string(known.ErrorCode(err)), 0, ""
	}
	a.browsers[b] = ss
	r.changed = true
	outcome := r.sessionText(ss)

	if s.proof != propNoProof {
		for _, k := range proven {
			if r.owner(k) != s.actor {
				return outcome, 0, fmt.Sprintf("a proof made for %s was accepted for %s", propertyNames[s.actor], k)
			}
		}
		if !ss.Verified() {
			return outcome, 0, "a call whose proof verified left the session unverified"
		}
	}
	if ss.UserID == nil {
		if len(asserted) > 0 {
			return outcome, 0, "a call that named an identity left the session without a user"
		}
		return outcome, 0, ""
	}
	u, err := r.e.svc.User(r.e.ctx, *ss.UserID)
	if err != nil {
		return outcome, 0, fmt.Sprintf("reading the session's user: %v", err)
	}
	if v := r.othersProven(s.actor, u); v != "" {
		return outcome, 1, "the call landed on " + v
	}
	for _, k := range proven {
		if id := u.Identity(k.kind); id == nil || id.Value != k.value || !id.Proven {
			return outcome, 3, fmt.Sprintf("the call proving %s succeeded, but its user %s does not hold it proven", k, r.userText(u))
		}
		r.ack[k] = propAck{user: u.ID, actor: s.actor}
		a.proved[k] = true
	}
	// An identity of the kind replaced on the user the call landed on: the owner may replace
	// its own identity (a new email for its user id); nobody else may.
	for _, x := range asserted {
		for k, ak := range r.ack {
			if k.kind == x.kind && k.value != x.value && ak.user == u.ID && ak.actor == s.actor {
				delete(r.ack, k)
				outcome += fmt.Sprintf(" (the owner replaced its proven %s on %s)", k, r.label(&u.ID))
			}
		}
	}
	return outcome, 0, ""
}

// othersProven says which proven identity of another actor user u holds ("" when none): a
// call of actor that lands on, or writes to, such a user reached it through an identity the
// actor did not prove.
func (r *propRun) othersProven(actor int, u *known.User) string {
	for _, id := range u.Identities {
		k := propKey{id.Kind, id.Value}
		if o := r.owner(k); id.Proven && o >= 0 && o != actor {
			return fmt.Sprintf("user %s, which holds %s's proven %s", r.userText(u), propertyNames[o], k)
		}
	}
	return ""
}

// refusedProof says why a refused call should have succeeded ("" when its refusal is
// allowed): a call that only proves identities of its own actor, and claims nothing besides,
// is never refused because of a user that only claimed them (API.md §3). It may be refused
// when the actor's own identities are proven on two different users.
func (r *propRun) refusedProof(s propStep, asserted, proven []propKey, err error) string {
	if s.proof == propNoProof || len(asserted) != len(proven) || known.ErrorCode(err) == known.Invalid {
		return "" // an INVALID input field (even one a JWT leaves unread) is refused before any proof
	}
	users := map[known.UserID]bool{}
	for _, k := range proven {
		if r.owner(k) != s.actor {
			return "" // a proof sent with another actor's identity: refused, rightly
		}
		if ak, ok := r.ack[k]; ok {
			users[ak.user] = true
		}
	}
	if len(users) > 1 {
		return ""
	}
	return fmt.Sprintf("%s's proof of only its own %v was refused", propertyNames[s.actor], proven)
}

// users reads every user of the run's project through the dashboard.
func (r *propRun) users() (map[known.UserID]*known.User, error) {
	out := map[known.UserID]*known.User{}
	page := known.Page{First: 100}
	for {
		us, more, err := r.e.svc.Users(r.e.ctx, service.UserFilter{}, page)
		if err != nil {
			return nil, fmt.Errorf("listing users: %w", err)
		}
		for _, u := range us {
			out[u.ID] = u
		}
		if !more || len(us) == 0 {
			return out, nil
		}
		page.After = string(us[len(us)-1].ID)
	}
}

// owner is the actor whose own identity k is, or -1.
func (r *propRun) owner(k propKey) int {
	for i := range r.actors {
		if (k.kind == known.IdentityExternalID && k.value == propExt(i)) || (k.kind == known.IdentityEmail && k.value == propEmail(i)) {
			return i
		}
	}
	return -1
}

func (r *propRun) userText(u *known.User) string {
	var ids []string
	for _, id := range u.Identities {
		state := "claimed"
		if id.Proven {
			state = "proven"
		}
		ids = append(ids, fmt.Sprintf("%s %s %s", id.Kind, id.Value, state))
	}
	return fmt.Sprintf("%s [%s]", r.label(&u.ID), strings.Join(ids, ", "))
}

// mayRead says why actor may not read conversation c ("" when it may): it started it, or the
// conversation's user holds proven an identity the actor proved.
func (r *propRun) mayRead(actor int, c *known.Conversation, users map[known.UserID]*known.User) string {
	if who, ok := r.starter[c.ID]; ok && who == actor {
		return ""
	}
	n := slices.Index(r.convs, c.ID)
	if c.UserID == nil {
		return fmt.Sprintf("conversation #%d, which has no user", n)
	}
	u := users[*c.UserID]
	if u == nil {
		return fmt.Sprintf("conversation #%d of a user %s that does not exist", n, r.label(c.UserID))
	}
	for _, id := range u.Identities {
		if id.Proven && r.actors[actor].proved[propKey{id.Kind, id.Value}] {
			return ""
		}
	}
	by := "nobody known"
	if who, ok := r.starter[c.ID]; ok {
		by = propertyNames[who]
	}
	return fmt.Sprintf("conversation #%d (started by %s) of user %s, through no identity %s proved",
		n, by, r.userText(u), propertyNames[actor])
}

// check reads the project back and checks the invariants.
func (r *propRun) check() (int, string) {
	users, err := r.users()
	if err != nil {
		return 0, err.Error()
	}
	// 2. One holder per identity; proven identities of one actor per user.
	holder := map[propKey]known.UserID{}
	for _, u := range users {
		owners := map[int]bool{}
		for _, id := range u.Identities {
			k := propKey{id.Kind, id.Value}
			if other, ok := holder[k]; ok {
				return 2, fmt.Sprintf("identity %s is held by two users: %s and %s", k, r.userText(users[other]), r.userText(u))
			}
			holder[k] = u.ID
			if o := r.owner(k); id.Proven && o >= 0 {
				owners[o] = true
			}
		}
		if len(owners) > 1 {
			return 2, fmt.Sprintf("user %s holds proven identities of %d actors", r.userText(u), len(owners))
		}
	}
	// 3. Every acknowledged proof is still on its user.
	for k, ak := range r.ack {
		u := users[ak.user]
		if u == nil {
			return 3, fmt.Sprintf("%s proved %s on user %s, which no longer exists", propertyNames[ak.actor], k, r.label(&ak.user))
		}
		if id := u.Identity(k.kind); id == nil || id.Value != k.value || !id.Proven {
			return 3, fmt.Sprintf("%s proved %s on user %s, which no longer holds it proven: %s", propertyNames[ak.actor], k, r.label(&ak.user), r.userText(u))
		}
	}
	// 1. What each browser reads, through the session query's conversations.
	for ai, a := range r.actors {
		for bi, ss := range a.browsers {
			cs, _, _, _, err := r.e.svc.SessionConversations(widgetCtx(ss.Token), ss, known.Page{First: 100}, service.SessionByID)
			if err != nil {
				if v := propBadError(err); v != "" {
					return 0, fmt.Sprintf("%s#%d's conversations: %s", propertyNames[ai], bi, v)
				}
				continue // a claimed session of a user verified since reads nothing
			}
			for _, c := range cs {
				if v := r.mayRead(ai, c, users); v != "" {
					return 1, fmt.Sprintf("%s#%d (session %s %s) reads %s", propertyNames[ai], bi, ss.Level, r.label(ss.UserID), v)
				}
			}
		}
	}
	return 0, ""
}
