package main

// The widget SDK (API.md §8) in a real browser: Debian's Chromium, driven by chromedp, loads a
// customer's page from one origin and widget.js from a real Known on another, as on a
// customer's site. Each rule is a subtest in a tab of its own, in a fresh browser context
// (empty storage), of one browser for the whole test.

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/knownhq/known/widget"
)

var widgetScreenshot = flag.String("widget-screenshot", "", "write a PNG of the open chat panel to this file (docs/widget-panel.png)")

func TestWidgetInBrowser(t *testing.T) {
	env := testEnv(t)
	env["KNOWN_DEMO"] = "true"
	k := startRun(t, env)
	site := newCustomerSite(t)
	b := startBrowser(t)
	w := &browserEnv{t: t, k: k, site: site, browser: b}

	t.Run("SnippetIdentifiesTheUser", w.snippetIdentifiesTheUser)
	t.Run("QueuedCallsRunInOrder", w.queuedCallsRunInOrder)
	t.Run("LoadImmediatelyFalseSendsNothingUntilLoad", w.loadImmediatelyFalseSendsNothingUntilLoad)
	t.Run("IdentificationTokenVerifiesAtLoad", w.identificationTokenVerifiesAtLoad)
	t.Run("SessionSurvivesReloadAndEndsWithResetSession", w.sessionSurvivesReloadAndEndsWithResetSession)
	t.Run("DeadTokenRecoversSilently", w.deadTokenRecoversSilently)
	t.Run("RefusalRejectsWithCodeAndField", w.refusalRejectsWithCodeAndField)
	t.Run("CompatHAL", w.compatHAL)
	t.Run("CompatPromptify", w.compatPromptify)
	t.Run("CompatHubSpot", w.compatHubSpot)
	t.Run("UISendsMessageAndShowsAgentReply", w.uiSendsMessageAndShowsAgentReply)
	t.Run("AgentReplyArrivesLiveWithoutPolling", w.agentReplyArrivesLiveWithoutPolling)
	t.Run("UIIsIsolatedFromThePageCSS", w.uiIsIsolatedFromThePageCSS)
	t.Run("UIFalseDrawsNothing", w.uiFalseDrawsNothing)
	t.Run("NoRequestLeavesTheTwoOrigins", w.noRequestLeavesTheTwoOrigins)
	t.Run("ScriptArrivesGzippedUnderBudget", w.scriptArrivesGzippedUnderBudget)
	t.Run("DemoPageIdentifiesATestUser", w.demoPageIdentifiesATestUser)
}

// browserEnv is what the subtests share: one Known, one customer site, one browser.
type browserEnv struct {
	t       *testing.T
	k       *knownServer
	site    *customerSite
	browser context.Context
}

// project makes a project for one subtest, so that subtests share no user, session or limit.
func (w *browserEnv) project(t *testing.T) (appID, key string) {
	return createProject(t, w.k.URL, t.Name())
}

// scriptTag is the customer's tag for widget.js; attrs are extra attributes.
func (w *browserEnv) scriptTag(attrs string) string {
	return fmt.Sprintf(`<script async src="%s/widget.js"%s></script>`, w.k.URL, attrs)
}

// open serves html on the customer's site and opens it in a new tab.
func (w *browserEnv) open(t *testing.T, html string) *tab {
	t.Helper()
	tb := newTab(t, w.browser, w.k.URL, w.site.URL())
	tb.navigate(t, w.site.serve(html))
	return tb
}

func (w *browserEnv) snippetIdentifiesTheUser(t *testing.T) {
	app, key := w.project(t)
	// API.md §8's snippet, as a customer pastes it.
	tb := w.open(t, page(`<script>
  window.knownSettings = { appId: "`+app+`", loadImmediately: true };     // before the script tag
  window.knownOnReady = [function (known) { known.identify({ user_id: "42", email: "a@b.co" }); }];
</script>
`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.Known && Known.session && Known.session.userId`)

	u := searchByExternalID(t, w.k.URL, key, "42")
	if u == nil || deref(u.Email) != "a@b.co" || u.Verified {
		t.Fatalf("user 42 = %+v, want a claimed user with email a@b.co", u)
	}
	if got := evalJS[string](t, tb, `Known.session.userId`); got != u.ID {
		t.Errorf("Known.session.userId = %q, want the user's id %q", got, u.ID)
	}
	token := evalJS[string](t, tb, `localStorage.getItem("known:`+app+`:session") || ""`)
	if !strings.HasPrefix(token, "ks1.") {
		t.Errorf("localStorage known:<appId>:session = %q, want the session token", token)
	}
	if evalJS[bool](t, tb, `"token" in Known.session`) {
		t.Errorf("Known.session exposes the token; it is kept in storage only")
	}
}

func (w *browserEnv) queuedCallsRunInOrder(t *testing.T) {
	app, key := w.project(t)
	tb := w.open(t, page(`<script>
  window.order = [];
  const note = (i) => (v) => { order.push(i); return v; };
  window.knownSettings = { appId: "`+app+`", ui: false };
  window.knownOnReady = [function (known) {
    // Nothing is awaited: the SDK must run these one at a time, in this order.
    window.done = Promise.all([
      known.identify({ user_id: "q-1", email: "queue@example.com", company: { id: "acme", name: "Acme" } }).then(note(1)),
      known.setProperties({ plan: "trial" }).then(note(2)),
      known.track("first").then(note(3)),
      known.track("second", { n: 2 }).then(note(4)),
      known.setProperties({ plan: "pro" }).then(note(5)),
      known.setStage("Qualified", { companyId: "acme" }).then(note(6)),
      known.startConversation("Hello from the queue").then(note(7)),
    ]);
  }, function (known) { window.secondRan = !!window.done; }];
</script>
`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.done`)
	evalJS[chromedp.Void](t, tb, `done.then(() => undefined)`)
	if got := evalJS[[]int](t, tb, `order`); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("calls settled in the order %v, want 1…7", got)
	}
	if !evalJS[bool](t, tb, `window.secondRan`) {
		t.Errorf("the second knownOnReady function did not run after the first")
	}
	// A function pushed after the widget is ready runs at once.
	if !evalJS[bool](t, tb, `(() => { let ran = false; knownOnReady.push(() => { ran = true; }); return ran; })()`) {
		t.Errorf("a function pushed to knownOnReady after ready did not run at once")
	}

	u := userByExternalID(t, w.k.URL, key, "q-1")
	if u.Metadata["plan"] != "pro" {
		t.Errorf("metadata.plan = %v, want pro (the later setProperties wins only when run in order)", u.Metadata["plan"])
	}
	if names := u.eventNames(); !slices.Equal(names, []string{"second", "first"}) {
		t.Errorf("events newest first = %v, want [second first]", names)
	}
	if len(u.Companies.Nodes) != 1 || deref(u.Companies.Nodes[0].Stage) != "Qualified" {
		t.Errorf("companies = %+v, want acme at stage Qualified", u.Companies.Nodes)
	}
	if len(u.ConversationIDs) != 1 {
		t.Errorf("conversations = %v, want the one started after identify, on the user", u.ConversationIDs)
	}
}

func (w *browserEnv) loadImmediatelyFalseSendsNothingUntilLoad(t *testing.T) {
	app, key := w.project(t)
	tb := w.open(t, page(`<script>
  window.knownSettings = { appId: "`+app+`", loadImmediately: false };
  window.knownOnReady = [function (known) { window.early = known.identify({ user_id: "lazy-1" }); }];
</script>
`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.early`)
	// Nothing happens to wait for: give a wrongly eager SDK time to send its request.
	time.Sleep(300 * time.Millisecond)
	if n := tb.requestsTo(w.k.URL + "/graphql"); n != 0 {
		t.Fatalf("%d requests to /graphql before Known.widget.load(), want none", n)
	}
	if evalJS[bool](t, tb, `!!document.querySelector("known-widget")`) {
		t.Errorf("the launcher is drawn before Known.widget.load()")
	}
	if u := searchByExternalID(t, w.k.URL, key, "lazy-1"); u != nil {
		t.Fatalf("user lazy-1 exists before load()")
	}
	evalJS[chromedp.Void](t, tb, `Known.widget.load().then(() => early).then(() => undefined)`)
	if u := searchByExternalID(t, w.k.URL, key, "lazy-1"); u == nil {
		t.Fatalf("the identify queued before load() did not run after it")
	}
	if !evalJS[bool](t, tb, `!!document.querySelector("known-widget")`) {
		t.Errorf("load() did not draw the launcher")
	}
}

func (w *browserEnv) identificationTokenVerifiesAtLoad(t *testing.T) {
	app, key := w.project(t)
	token := identificationToken(t, w.k.URL, key, "gob@bluth.com")
	// Seed 004's flow: loadImmediately false first, the email and token set later, then load.
	tb := w.open(t, page(`<script>
  window.knownSettings = { appId: "`+app+`", loadImmediately: false };
  window.knownOnReady = [function (known) {
    window.knownSettings.identificationEmail = "gob@bluth.com";
    window.knownSettings.identificationToken = "`+token+`";
    known.widget.load();
  }];
</script>
`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.Known && Known.session && Known.session.verified`)
	if m := evalJS[string](t, tb, `Known.session.verificationMethod`); m != "TOKEN" {
		t.Errorf("verificationMethod = %q, want TOKEN", m)
	}
	u := searchByEmail(t, w.k.URL, key, "gob@bluth.com")
	if u == nil || !u.Verified || deref(u.VerificationMethod) != "TOKEN" {
		t.Fatalf("user gob@bluth.com = %+v, want verified by TOKEN", u)
	}
}

func (w *browserEnv) sessionSurvivesReloadAndEndsWithResetSession(t *testing.T) {
	app, key := w.project(t)
	head := `<script>window.knownSettings = { appId: "` + app + `", ui: false };</script>` + w.scriptTag("")
	tb := w.open(t, page(head, ""))
	tb.waitFor(t, `window.Known`)
	evalJS[chromedp.Void](t, tb, `Known.identify({ user_id: "r-1" }).then(() => Known.startConversation("before the reload")).then(() => undefined)`)
	before := evalJS[string](t, tb, `localStorage.getItem("known:`+app+`:session")`)

	if err := chromedp.Do(tb.ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reloading: %v", err)
	}
	tb.waitFor(t, `window.Known && Known.widget.status().loaded`)
	bodies := evalJS[[]string](t, tb, `Known.conversations().then(cs => cs.flatMap(c => c.messages.map(m => m.body)))`)
	if !slices.Equal(bodies, []string{"before the reload"}) {
		t.Fatalf("after a reload the visitor reads %v, want the conversation from before", bodies)
	}
	if after := evalJS[string](t, tb, `localStorage.getItem("known:`+app+`:session")`); after != before {
		t.Errorf("the reload changed the stored token")
	}
	if u := userByExternalID(t, w.k.URL, key, "r-1"); len(u.ConversationIDs) != 1 {
		t.Errorf("user r-1 has %d conversations, want 1", len(u.ConversationIDs))
	}

	evalJS[chromedp.Void](t, tb, `Known.resetSession().then(() => undefined)`)
	if v := evalJS[*string](t, tb, `localStorage.getItem("known:`+app+`:session")`); v != nil {
		t.Errorf("after resetSession() the stored token is %q, want none", *v)
	}
	h := http.Header{}
	h.Set("X-Widget-Session", before)
	gqlHeaders(t, w.k.URL, h, `{ session { visitorId } }`, nil).requireCode(t, "UNAUTHENTICATED")
	if n := evalJS[int](t, tb, `Known.conversations().then(cs => cs.length)`); n != 0 {
		t.Errorf("after logout the visitor reads %d conversations, want 0", n)
	}
}

func (w *browserEnv) deadTokenRecoversSilently(t *testing.T) {
	app, _ := w.project(t)
	// An ended token (its session was reset), and one Known never signed.
	ended := widgetToken(t, w.k.URL, app)
	h := http.Header{}
	h.Set("X-Widget-Session", ended)
	gqlHeaders(t, w.k.URL, h, `mutation { resetSession { session { token } userErrors { code } } }`, nil)
	otherApp, _ := createProject(t, w.k.URL, t.Name()+"-other")

	for name, dead := range map[string]string{"Ended": ended, "Forged": "ks1.forged.token", "OtherApp": widgetToken(t, w.k.URL, otherApp)} {
		t.Run(name, func(t *testing.T) {
			tb := w.open(t, page(`<script>
  window.problems = [];
  addEventListener("unhandledrejection", (e) => problems.push(String(e.reason)));
  addEventListener("error", (e) => problems.push(e.message));
  localStorage.setItem("known:`+app+`:session", "`+dead+`");
  window.knownSettings = { appId: "`+app+`" };
  window.knownOnReady = [function (known) {
    window.tracked = known.track("after-a-dead-token").then((e) => e.name, (e) => "rejected: " + e.code);
    window.identified = known.identify({ user_id: "d-1" }).then((s) => s.userId, (e) => "rejected: " + e.code);
  }];
</script>
`+w.scriptTag(""), ""))
			tb.waitFor(t, `window.identified`)
			if got := evalJS[string](t, tb, `tracked`); got != "after-a-dead-token" {
				t.Errorf("track with a dead token gave %q, want the event", got)
			}
			if got := evalJS[string](t, tb, `identified`); strings.HasPrefix(got, "rejected") {
				t.Errorf("identify after a dead token gave %q", got)
			}
			if p := evalJS[[]string](t, tb, `problems`); len(p) > 0 {
				t.Errorf("errors reached the page: %v", p)
			}
			if now := evalJS[string](t, tb, `localStorage.getItem("known:`+app+`:session")`); now == dead || !strings.HasPrefix(now, "ks1.") {
				t.Errorf("stored token = %q, want a new one", now)
			}
		})
	}
}

func (w *browserEnv) refusalRejectsWithCodeAndField(t *testing.T) {
	app, key := w.project(t)
	tb := w.open(t, page(`<script>window.knownSettings = { appId: "`+app+`", ui: false };</script>`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.Known`)
	type refusal struct {
		IsError bool     `json:"isError"`
		Name    string   `json:"name"`
		Code    string   `json:"code"`
		Field   []string `json:"field"`
		Message string   `json:"message"`
	}
	catch := func(call string) refusal {
		t.Helper()
		return evalJS[refusal](t, tb, call+`.then(() => ({ code: "RESOLVED" }), (e) => ({ isError: e instanceof Error, name: e.name, code: e.code, field: e.field, message: e.message }))`)
	}
	cases := []struct {
		call  string
		code  string
		field []string
	}{
		// A userError of the server.
		{`Known.identify({ email: "not an email" })`, "INVALID", []string{"input", "email"}},
		{`Known.setUser({ id: "u", avatarUrl: "http://example.com/a.png" })`, "INVALID", []string{"input", "avatarUrl"}},
		{`Known.setStage("Won")`, "COMPANY_REQUIRED", []string{"input", "companyId"}},
		// A field the SDK does not know is refused before anything is sent, not dropped.
		{`Known.identify({ user_idd: "1" })`, "INVALID", []string{"identify", "user_idd"}},
		{`Known.startConversation("")`, "INVALID", []string{"input", "body"}},
	}
	for _, c := range cases {
		got := catch(c.call)
		if !got.IsError || got.Name != "KnownError" || got.Code != c.code || !slices.Equal(got.Field, c.field) || got.Message == "" {
			t.Errorf("%s rejected with %+v, want an Error with code %s and field %v", c.call, got, c.code, c.field)
		}
	}

	// A GraphQL error (the whole operation refused): this page's origin is not allowed.
	r := gql(t, w.k.URL, key, `mutation { updateProject(input: {allowedOrigins: ["https://shop.example"]}) { userErrors { code } } }`, nil)
	if r.code() != "" {
		t.Fatalf("updateProject: %s", r.Body)
	}
	if got := catch(`Known.track("refused")`); !got.IsError || got.Code != "FORBIDDEN" || got.Field != nil {
		t.Errorf("a call from an origin the app does not allow rejected with %+v, want FORBIDDEN with no field", got)
	}
}

func (w *browserEnv) compatHAL(t *testing.T) {
	app, key := w.project(t)
	// Seed 002's recommended payload, verbatim, through window.HalWidget.
	tb := w.open(t, page(`<script>window.knownSettings = { appId: "`+app+`", compat: ["hal"], ui: false };</script>
<script src="`+w.k.URL+`/widget.js"></script>
<script>
  window.done = Promise.all([
    window.HalWidget.identify({
      "app_id": "proj_123",
      "visitor_id": "user_456",
      "user_id": "user_456",
      "email": "alice@acme.com",
      "name": "Alice",
      "metadata": {
        "plan": "enterprise",
        "role": "admin"
      },
      "company": {
        "id": "acme",
        "name": "Acme Inc",
        "stage": "Qualified",
        "metadata": {
          "arr_band": "50k-100k",
          "crm_owner": "Sam"
        }
      }
    }),
    window.HalWidget.setProperties({ seats: 12 }),
    window.HalWidget.track("trial-started", { source: "pricing" }),
    window.HalWidget.setStage({ stage: "Customer", company_id: "acme" }),
    window.HalWidget.setDeal({ company_id: "acme", name: "Acme renewal", amount: 50000, currency: "USD", status: "open" }),
  ]).then(() => "ok", (e) => e.code + " " + e.field);
</script>`, ""))
	tb.waitFor(t, `window.done`)
	if got := evalJS[string](t, tb, `done`); got != "ok" {
		t.Fatalf("the HAL snippet failed: %s", got)
	}
	u := userByExternalID(t, w.k.URL, key, "user_456")
	if deref(u.Email) != "alice@acme.com" || deref(u.Name) != "Alice" || u.Metadata["plan"] != "enterprise" || u.Metadata["seats"] != float64(12) {
		t.Errorf("user = %+v, want Alice with plan enterprise and 12 seats", u)
	}
	if names := u.eventNames(); !slices.Equal(names, []string{"trial-started"}) {
		t.Errorf("events = %v, want [trial-started]", names)
	}
	if len(u.Companies.Nodes) != 1 {
		t.Fatalf("companies = %+v, want acme", u.Companies.Nodes)
	}
	c := u.Companies.Nodes[0]
	if c.ExternalID != "acme" || deref(c.Stage) != "Customer" || c.Deal == nil || deref(c.Deal.Name) != "Acme renewal" || deref(c.Deal.Status) != "OPEN" {
		t.Errorf("company = %+v, want acme at stage Customer with the open Acme renewal deal", c)
	}
}

func (w *browserEnv) compatPromptify(t *testing.T) {
	app, key := w.project(t)
	// Seed 003's calls, verbatim, through window.promptify.
	tb := w.open(t, page(`<script>window.knownSettings = { appId: "`+app+`", compat: ["promptify"], ui: false };</script>
<script src="`+w.k.URL+`/widget.js"></script>
<script>
promptify.setUser({ id: null });

window.done = promptify.setUser({
id: "user-123",
email: "jane@example.com",
name: "Jane Doe",
avatarUrl: "https://example.com/avatar.jpg",
attrs: {
plan: "pro",
active: true,
},
organizations: [{ id: "org-456", name: "Acme Corp", attrs: { industry: "SaaS" } }],
}).then(() => "ok", (e) => e.code + " " + e.field);
</script>`, ""))
	tb.waitFor(t, `window.done`)
	if got := evalJS[string](t, tb, `done`); got != "ok" {
		t.Fatalf("the Promptify snippet failed: %s", got)
	}
	u := userByExternalID(t, w.k.URL, key, "user-123")
	if deref(u.Email) != "jane@example.com" || deref(u.AvatarURL) != "https://example.com/avatar.jpg" || u.Metadata["plan"] != "pro" {
		t.Errorf("user = %+v, want Jane with her avatar and plan pro", u)
	}
	if len(u.Organizations.Nodes) != 1 || u.Organizations.Nodes[0].ExternalID != "org-456" || u.Organizations.Nodes[0].Name != "Acme Corp" {
		t.Errorf("organizations = %+v, want org-456 Acme Corp", u.Organizations.Nodes)
	}
	// setUser({id: null}) is anonymous.
	evalJS[chromedp.Void](t, tb, `promptify.setUser({ id: null }).then(() => undefined)`)
	if !evalJS[bool](t, tb, `Known.session.anonymous`) {
		t.Errorf("after setUser({id: null}) the session is not anonymous")
	}
}

func (w *browserEnv) compatHubSpot(t *testing.T) {
	app, key := w.project(t)
	token := identificationToken(t, w.k.URL, key, "visitor-email@example.com")
	// Seed 004's primer and visitor identification, verbatim but for the token; the script
	// tag is the only line that changes, and it carries the app id.
	tb := w.open(t, page(`<script type="text/javascript">
window.hsConversationsSettings = { loadImmediately: false };
function onConversationsAPIReady() {
  console.log(`+"`HubSpot Conversations API: ${window.HubSpotConversations}`"+`);
  window.hsConversationsSettings = { identificationEmail: "visitor-email@example.com", identificationToken: "`+token+`" };
  window.HubSpotConversations.widget.load();
}
/* If external API methods are already available, use them. */
if (window.HubSpotConversations) {
  onConversationsAPIReady();
} else {
  /* Otherwise, callbacks can be added to the hsConversationsOnReady on the window object. These callbacks will be called once the external API has been initialized. */
  window.hsConversationsOnReady = [onConversationsAPIReady];
}
</script>
`+w.scriptTag(` data-app-id="`+app+`" data-compat="hubspot"`), ""))
	tb.waitFor(t, `window.Known && Known.session && Known.session.verified`)
	u := searchByEmail(t, w.k.URL, key, "visitor-email@example.com")
	if u == nil || !u.Verified || deref(u.VerificationMethod) != "TOKEN" {
		t.Fatalf("user = %+v, want visitor-email@example.com verified by TOKEN", u)
	}
	tb.waitFor(t, `!!document.querySelector("known-widget")`)
	evalJS[chromedp.Void](t, tb, `HubSpotConversations.widget.open()`)
	if evalJS[bool](t, tb, `document.querySelector("known-widget").shadowRoot.querySelector(".panel").hidden`) {
		t.Errorf("HubSpotConversations.widget.open() did not open the panel")
	}
	evalJS[chromedp.Void](t, tb, `HubSpotConversations.widget.remove()`)
	if evalJS[bool](t, tb, `!!document.querySelector("known-widget")`) {
		t.Errorf("HubSpotConversations.widget.remove() left the widget on the page")
	}
}

// agentReplyArrivesLiveWithoutPolling: with no panel and a poll interval of an hour, the
// agent's reply still reaches on("message"), once: through sessionEvents (API.md §9).
func (w *browserEnv) agentReplyArrivesLiveWithoutPolling(t *testing.T) {
	app, key := w.project(t)
	tb := w.open(t, page(`<script>
  window.knownSettings = { appId: "`+app+`", ui: false, pollInterval: 3600000 };
  window.replies = [];
  window.knownOnReady = [(known) => known.on("message", (m) => replies.push(m.conversationId + ":" + m.body))];
</script>
`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.Known && Known.widget.status().loaded`)
	conv := evalJS[string](t, tb, `Known.startConversation("is anyone there?").then((c) => c.id)`)
	time.Sleep(300 * time.Millisecond) // the socket subscribes with the session it just got
	r := gql(t, w.k.URL, key, `mutation($id: ID!) { replyToConversation(input: {conversationId: $id, body: "Right here."}) { message { id } userErrors { code message } } }`,
		map[string]any{"id": conv})
	if strings.Contains(r.Body, `"code":"`) {
		t.Fatalf("replyToConversation: %s", r.Body)
	}
	tb.waitFor(t, `replies.length > 0`)
	time.Sleep(200 * time.Millisecond)
	if got := evalJS[[]string](t, tb, `replies`); !slices.Equal(got, []string{conv + ":Right here."}) {
		t.Errorf("message events = %v, want the agent's reply once", got)
	}
}

func (w *browserEnv) uiSendsMessageAndShowsAgentReply(t *testing.T) {
	app, key := w.project(t)
	tb := w.open(t, page(`<script>
  window.knownSettings = { appId: "`+app+`", pollInterval: 250 };
  window.keys = [];
  addEventListener("keydown", (e) => keys.push(e.key + "@" + e.composedPath()[0].tagName + ":" + e.defaultPrevented), true);
  window.replies = [];
  window.knownOnReady = [(known) => known.on("message", (m) => replies.push(m.body))];
</script>
`+w.scriptTag(""), `<main style="font-family: Georgia, serif; padding: 40px; max-width: 560px">
  <h1>Acme Analytics</h1><p>Dashboards for teams that ship. Questions? Ask us in the chat.</p>
</main>`))
	const root = `document.querySelector("known-widget").shadowRoot`
	tb.waitFor(t, `!!document.querySelector("known-widget")`)
	launcher := chromedp.JSPath(root + `.querySelector(".launcher")`)
	if err := chromedp.Do(tb.ctx, chromedp.Click(launcher)); err != nil {
		t.Fatalf("clicking the launcher: %v", err)
	}
	tb.waitFor(t, `!`+root+`.querySelector(".panel").hidden && `+root+`.activeElement && `+root+`.activeElement.id === "known-input"`)
	// The keyboard alone: type into the focused composer and press Enter.
	if err := chromedp.Do(tb.ctx, chromedp.KeyEvent("Hi, can I export my dashboards?"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("typing: %v", err)
	}
	tb.waitFor(t, root+`.querySelector(".msg.VISITOR") && `+root+`.querySelector(".msg.VISITOR").textContent.includes("export my dashboards")`)

	conv := onlyConversation(t, w.k.URL, key)
	r := gql(t, w.k.URL, key, `mutation($id: ID!) { replyToConversation(input: {conversationId: $id, body: "Yes: Settings → Export, as CSV or PDF."}) { message { id } userErrors { code message } } }`,
		map[string]any{"id": conv})
	if r.code() != "" || strings.Contains(r.Body, `"code":"`) {
		t.Fatalf("replyToConversation: %s", r.Body)
	}
	tb.waitFor(t, root+`.querySelector(".msg.AGENT") && `+root+`.querySelector(".msg.AGENT").textContent.includes("Settings → Export")`)
	if got := evalJS[[]string](t, tb, `replies`); !slices.Equal(got, []string{"Yes: Settings → Export, as CSV or PDF."}) {
		t.Errorf("message events = %v, want the agent's reply once", got)
	}

	// Labelled for screen readers.
	labels := evalJS[map[string]string](t, tb, `(() => { const r = `+root+`; const input = r.querySelector("#known-input"); return {
	  launcher: r.querySelector(".launcher").getAttribute("aria-label"),
	  expanded: r.querySelector(".launcher").getAttribute("aria-expanded"),
	  role: r.querySelector(".panel").getAttribute("role"),
	  title: r.getElementById(r.querySelector(".panel").getAttribute("aria-labelledby")).textContent,
	  input: input.labels[0] ? input.labels[0].textContent : "",
	  log: r.querySelector("[role=log]").getAttribute("aria-live"),
	  close: r.querySelector(".close").getAttribute("aria-label") }; })()`)
	want := map[string]string{"launcher": "Close chat", "expanded": "true", "role": "dialog", "title": "Conversation", "input": "Message", "log": "polite", "close": "Close chat"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("%s = %q, want %q", k, labels[k], v)
		}
	}

	if *widgetScreenshot != "" {
		png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(*widgetScreenshot, png, 0o644); err != nil {
			t.Fatalf("writing the screenshot: %v", err)
		}
	}

	// Escape closes the panel and gives the focus back to the launcher.
	if err := chromedp.Do(tb.ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatalf("pressing Escape: %v", err)
	}
	tb.waitFor(t, root+`.querySelector(".panel").hidden && `+root+`.activeElement === `+root+`.querySelector(".launcher")`)
}

func (w *browserEnv) uiIsIsolatedFromThePageCSS(t *testing.T) {
	app, _ := w.project(t)
	// A page whose CSS would wreck any widget drawn in its DOM, and which has its own .launcher
	// and .panel that the widget's CSS must leave alone.
	tb := w.open(t, page(`<style>
  * { font-family: "Comic Sans MS", cursive !important; }
  button { display: none !important; background: red !important; }
  div, section, form, textarea { visibility: hidden !important; }
  known-widget { display: none; }
</style>
<script>window.knownSettings = { appId: "`+app+`" };</script>`+w.scriptTag(""),
		`<p class="launcher" id="mine">the page's own .launcher</p><p class="panel" id="theirs">the page's own .panel</p>`))
	tb.waitFor(t, `!!document.querySelector("known-widget")`)
	const root = `document.querySelector("known-widget").shadowRoot`
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.JSPath(root+`.querySelector(".launcher")`))); err != nil {
		t.Fatalf("the launcher is not clickable under the page's CSS: %v", err)
	}
	tb.waitFor(t, `!`+root+`.querySelector(".panel").hidden`)
	styles := evalJS[map[string]string](t, tb, `(() => { const r = `+root+`; const cs = (e) => getComputedStyle(e); return {
	  launcherDisplay: cs(r.querySelector(".launcher")).display,
	  launcherBackground: cs(r.querySelector(".launcher")).backgroundColor,
	  panelVisibility: cs(r.querySelector(".panel")).visibility,
	  inputVisibility: cs(r.querySelector("textarea")).visibility,
	  font: cs(r.querySelector("textarea")).fontFamily,
	  mineposition: cs(document.getElementById("mine")).position,
	  theirsposition: cs(document.getElementById("theirs")).position }; })()`)
	if styles["launcherDisplay"] == "none" || styles["launcherBackground"] == "rgb(255, 0, 0)" {
		t.Errorf("the page's button rule reached the launcher: %v", styles)
	}
	if styles["panelVisibility"] != "visible" || styles["inputVisibility"] != "visible" || strings.Contains(styles["font"], "Comic") {
		t.Errorf("the page's CSS reached the panel: %v", styles)
	}
	if styles["mineposition"] != "static" || styles["theirsposition"] != "static" {
		t.Errorf("the widget's CSS reached the page's own .launcher/.panel: %v", styles)
	}
}

func (w *browserEnv) uiFalseDrawsNothing(t *testing.T) {
	app, _ := w.project(t)
	tb := w.open(t, page(`<script>window.knownSettings = { appId: "`+app+`", ui: false };</script>`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.Known && Known.widget.status().loaded`)
	if n := evalJS[int](t, tb, `document.body.querySelectorAll("*").length`); n != 0 {
		t.Errorf("ui: false drew %d elements", n)
	}
	if got := evalJS[string](t, tb, `Known.startConversation("headless").then((c) => c.status)`); got != "OPEN" {
		t.Errorf("startConversation headless = %q, want OPEN", got)
	}
}

func (w *browserEnv) noRequestLeavesTheTwoOrigins(t *testing.T) {
	app, key := w.project(t)
	tb := w.open(t, page(`<script>
  window.knownSettings = { appId: "`+app+`", pollInterval: 250 };
  window.knownOnReady = [(known) => { window.done = known.identify({ user_id: "o-1", avatar_url: "https://cdn.example.com/a.png" })
    .then(() => known.startConversation("Hello")).then(() => known.widget.open()).then(() => "ok"); }];
</script>`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.done`)
	if got := evalJS[string](t, tb, `done`); got != "ok" {
		t.Fatalf("the page's calls gave %q", got)
	}
	gql(t, w.k.URL, key, `mutation($id: ID!) { replyToConversation(input: {conversationId: $id, body: "Hello back"}) { message { id } } }`,
		map[string]any{"id": onlyConversation(t, w.k.URL, key)})
	tb.waitFor(t, `document.querySelector("known-widget").shadowRoot.querySelector(".msg.AGENT")`)
	// Every tab checks its requests when it closes; here the flow above must also have used
	// both origins, so that the check is not vacuous.
	if tb.requestsTo(w.k.URL+"/widget.js") != 1 || tb.requestsTo(w.k.URL+"/graphql") < 3 || tb.requestsTo(w.site.URL()) < 1 {
		t.Errorf("requests = %v, want the page, widget.js and the API calls", tb.allRequests())
	}
	tb.requireOrigins(t)
}

func (w *browserEnv) scriptArrivesGzippedUnderBudget(t *testing.T) {
	app, _ := w.project(t)
	tb := w.open(t, page(`<script>window.knownSettings = { appId: "`+app+`", ui: false };</script>`+w.scriptTag(""), ""))
	tb.waitFor(t, `window.Known`)
	size := evalJS[map[string]float64](t, tb, `(() => { const e = performance.getEntriesByType("resource").find((r) => r.name.endsWith("/widget.js")); return { encoded: e.encodedBodySize, decoded: e.decodedBodySize }; })()`)
	if size["encoded"] <= 0 || size["encoded"] > widget.MaxGzipSize || size["encoded"] >= size["decoded"] {
		t.Errorf("widget.js arrived as %v bytes (encoded, decoded): want compressed and at most %d", size, widget.MaxGzipSize)
	}
	t.Logf("widget.js: %.0f bytes gzipped, %.0f bytes uncompressed", size["encoded"], size["decoded"])
}

func (w *browserEnv) demoPageIdentifiesATestUser(t *testing.T) {
	app, key := createProject(t, w.k.URL, "Demo")
	tb := newTab(t, w.browser, w.k.URL)
	tb.navigate(t, w.k.URL+"/demo")
	tb.waitFor(t, `window.Known && Known.widget.status().loaded && !!document.querySelector("known-widget")`)
	if got := evalJS[string](t, tb, `Known === window.Known && window.knownSettings.appId`); got != app {
		t.Fatalf("the demo page embeds the app %q, want the Demo project's %q", got, app)
	}
	if err := chromedp.Do(tb.ctx,
		chromedp.SetValue(chromedp.ID("user_id"), "demo-7"),
		chromedp.SetValue(chromedp.ID("email"), "demo7@example.com"),
		chromedp.Click(chromedp.CSS(`#identify button[type=submit]`)),
	); err != nil {
		t.Fatalf("filling the demo form: %v", err)
	}
	tb.waitFor(t, `document.getElementById("session").textContent.includes('"anonymous": false')`)
	if u := userByExternalID(t, w.k.URL, key, "demo-7"); deref(u.Email) != "demo7@example.com" || deref(u.Name) != "Jane Doe" {
		t.Errorf("the demo form made %+v, want demo-7 with demo7@example.com and the name Jane Doe", u)
	}
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("logout"))); err != nil {
		t.Fatalf("clicking log out: %v", err)
	}
	tb.waitFor(t, `document.getElementById("session").textContent.includes("logged out")`)
}

/* ---------- the customer's site ---------- */

// customerSite serves the customer's pages from an origin other than Known's.
type customerSite struct {
	srv   *httptest.Server
	mu    sync.Mutex
	pages map[string]string
}

func newCustomerSite(t *testing.T) *customerSite {
	s := &customerSite{pages: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		html, ok := s.pages[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(html))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the site's origin.
func (s *customerSite) URL() string { return s.srv.URL }

// serve publishes html at a new path and returns its URL.
func (s *customerSite) serve(html string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := fmt.Sprintf("/page/%d", len(s.pages)+1)
	s.pages[p] = html
	return s.srv.URL + p
}

// page is a customer's HTML page.
func page(head, body string) string {
	return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Acme</title>\n" + head + "\n</head><body>" + body + "</body></html>"
}

/* ---------- the browser ---------- */

// startBrowser starts one headless Chromium for the test; it stops when the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatalf("Chromium is not installed: run scripts/chromium (or scripts/test, which runs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		chromedp.WindowSize(960, 720),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		// Nothing but the test's two origins: no updates, no proxy, no Google services.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("no-pings", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	return bctx
}

// tab is one page in a fresh browser context, recording the requests it makes.
type tab struct {
	ctx     context.Context
	origins []string

	mu         sync.Mutex
	requests   []string
	exceptions []string
}

func newTab(t *testing.T, browser context.Context, origins ...string) *tab {
	t.Helper()
	tb := &tab{origins: origins}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	tctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			tb.requests = append(tb.requests, e.Request.URL)
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			tb.exceptions = append(tb.exceptions, msg)
		}
	}))
	tb.ctx = tctx
	t.Cleanup(func() {
		tb.requireOrigins(t)
		tb.mu.Lock()
		if len(tb.exceptions) > 0 {
			t.Errorf("uncaught exceptions in the page: %v", tb.exceptions)
		}
		tb.mu.Unlock()
		cancelTab()
		cancel()
	})
	return tb
}

func (tb *tab) navigate(t *testing.T, u string) {
	t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("opening %s: %v", u, err)
	}
}

// waitFor polls the page until expr is truthy (15 s at most).
func (tb *tab) waitFor(t *testing.T, expr string) {
	t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[bool]("!!("+expr+")",
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		state, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`(() => { const h = document.querySelector("known-widget"); const r = h && h.shadowRoot;
		  return "active: " + (document.activeElement && document.activeElement.tagName) + " / " + (r && r.activeElement ? r.activeElement.outerHTML.slice(0, 80) : "none") +
		    "; keys: " + JSON.stringify(window.keys) + "; widget: " + (r ? r.innerHTML.slice(-300) : "none"); })()`))
		t.Fatalf("waiting for %s: %v\npage: %s", expr, err, state)
	}
}

func (tb *tab) allRequests() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.requests)
}

// requestsTo counts the requests whose URL starts with prefix.
func (tb *tab) requestsTo(prefix string) int {
	n := 0
	for _, u := range tb.allRequests() {
		if strings.HasPrefix(u, prefix) {
			n++
		}
	}
	return n
}

// requireOrigins fails the test if the page sent a request to any origin but the two.
func (tb *tab) requireOrigins(t *testing.T) {
	t.Helper()
	for _, raw := range tb.allRequests() {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "about" && !slices.Contains(tb.origins, u.Scheme+"://"+u.Host)) {
			t.Errorf("the page sent a request to %s: only %v are allowed", raw, tb.origins)
		}
	}
}

// evalJS evaluates expr in the page, awaiting a promise, and decodes its value into T.
func evalJS[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	var zero T
	if _, ok := any(zero).(chromedp.Void); ok {
		expr = "(async () => { await (" + expr + "); return {}; })()"
	}
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

/* ---------- Known, read with the secret key ---------- */

// widgetUser is a User as these tests read it.
type widgetUser struct {
	ID                 string         `json:"id"`
	ExternalID         *string        `json:"externalId"`
	Email              *string        `json:"email"`
	Name               *string        `json:"name"`
	AvatarURL          *string        `json:"avatarUrl"`
	Verified           bool           `json:"verified"`
	VerificationMethod *string        `json:"verificationMethod"`
	Metadata           map[string]any `json:"metadata"`
	ConversationIDs    []string       `json:"conversationIds"`
	Organizations      struct {
		Nodes []struct {
			ExternalID string `json:"externalId"`
			Name       string `json:"name"`
		} `json:"nodes"`
	} `json:"organizations"`
	Companies struct {
		Nodes []struct {
			ExternalID string  `json:"externalId"`
			Stage      *string `json:"stage"`
			Deal       *struct {
				Name   *string `json:"name"`
				Status *string `json:"status"`
			} `json:"deal"`
		} `json:"nodes"`
	} `json:"companies"`
	Events struct {
		Nodes []struct {
			Name string `json:"name"`
		} `json:"nodes"`
	} `json:"events"`
}

func (u *widgetUser) eventNames() []string {
	var names []string
	for _, e := range u.Events.Nodes {
		names = append(names, e.Name)
	}
	return names
}

const widgetUserFields = `id externalId email name avatarUrl verified verificationMethod metadata conversationIds
	organizations { nodes { externalId name } }
	companies { nodes { externalId stage deal { name status } } }
	events(first: 10) { nodes { name } }`

// search returns the user that searchUsers finds with vars, or nil.
func search(t *testing.T, baseURL, key string, vars map[string]any) *widgetUser {
	t.Helper()
	r := gql(t, baseURL, key, `query($email: String, $ext: ID) { searchUsers(email: $email, externalId: $ext) { user { `+widgetUserFields+` } } }`, vars)
	var data struct {
		SearchUsers []struct {
			User widgetUser `json:"user"`
		} `json:"searchUsers"`
	}
	r.decode(t, &data)
	switch len(data.SearchUsers) {
	case 0:
		return nil
	case 1:
		return &data.SearchUsers[0].User
	}
	t.Fatalf("searchUsers(%v) found %d users, want at most one: %s", vars, len(data.SearchUsers), r.Body)
	return nil
}

func searchByExternalID(t *testing.T, baseURL, key, ext string) *widgetUser {
	t.Helper()
	return search(t, baseURL, key, map[string]any{"ext": ext})
}

func searchByEmail(t *testing.T, baseURL, key, email string) *widgetUser {
	t.Helper()
	return search(t, baseURL, key, map[string]any{"email": email})
}

// userByExternalID is searchByExternalID that fails the test when there is no such user.
func userByExternalID(t *testing.T, baseURL, key, ext string) *widgetUser {
	t.Helper()
	u := searchByExternalID(t, baseURL, key, ext)
	if u == nil {
		t.Fatalf("no user with externalId %q", ext)
	}
	return u
}

// onlyConversation returns the id of the project's one conversation.
func onlyConversation(t *testing.T, baseURL, key string) string {
	t.Helper()
	r := gql(t, baseURL, key, `{ conversations(first: 5) { nodes { id } } }`, nil)
	var data struct {
		Conversations struct {
			Nodes []struct{ ID string } `json:"nodes"`
		} `json:"conversations"`
	}
	r.decode(t, &data)
	if len(data.Conversations.Nodes) != 1 {
		t.Fatalf("the project has %d conversations, want 1: %s", len(data.Conversations.Nodes), r.Body)
	}
	return data.Conversations.Nodes[0].ID
}

// identificationToken makes a seed 004 identification token for email.
func identificationToken(t *testing.T, baseURL, key, email string) string {
	t.Helper()
	r := gql(t, baseURL, key, `mutation($e: String!) { createIdentificationToken(input: {email: $e}) { token userErrors { code message } } }`,
		map[string]any{"e": email})
	var data struct {
		CreateIdentificationToken struct {
			Token *string `json:"token"`
		} `json:"createIdentificationToken"`
	}
	r.decode(t, &data)
	if data.CreateIdentificationToken.Token == nil {
		t.Fatalf("createIdentificationToken: %s", r.Body)
	}
	return *data.CreateIdentificationToken.Token
}

// widgetToken starts an anonymous widget session of app and returns its token.
func widgetToken(t *testing.T, baseURL, app string) string {
	t.Helper()
	r := gql(t, baseURL, "", `mutation($a: ID!) { identify(input: {appId: $a}) { session { token } } }`, map[string]any{"a": app})
	var data struct {
		Identify struct {
			Session struct{ Token string } `json:"session"`
		} `json:"identify"`
	}
	r.decode(t, &data)
	if data.Identify.Session.Token == "" {
		t.Fatalf("identify: %s", r.Body)
	}
	return data.Identify.Session.Token
}
