// Command seedknown seeds Known for the benchmark in ../run.sh through its public GraphQL API
// only, with the data that the Apollo peer's seed.mjs writes into its own database: a project,
// n users ("d-<i>", named "User <i>"), each linked to one of 7 companies ("co-<i%7>") and to
// the organization "org-1", with a conversation holding one message ("hi <i>"), and the
// project's user-data endpoint set to the fake user API.
//
//	KNOWN_ADMIN_TOKEN=… seedknown -url http://127.0.0.1:8080/graphql -n 100 -profiles http://127.0.0.1:9999/users/{id}
//
// It prints APP_ID=… and SECRET_KEY=… (shell assignments) on stdout.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

type client struct {
	url  string
	http *http.Client
}

// do posts one GraphQL operation and decodes its data into out; any GraphQL error is an error.
func (c *client) do(headers map[string]string, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || len(r.Errors) > 0 {
		return fmt.Errorf("HTTP %d: errors %v", resp.StatusCode, r.Errors)
	}
	return json.Unmarshal(r.Data, out)
}

// userErrors is the userErrors list of any payload.
type userErrors []struct {
	Field   []string `json:"field"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
}

func check(what string, ue userErrors) error {
	if len(ue) > 0 {
		return fmt.Errorf("%s: userErrors %+v", what, ue)
	}
	return nil
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/graphql", "Known's GraphQL endpoint")
	n := flag.Int("n", 100, "users, each with a conversation and a message")
	profiles := flag.String("profiles", "", "the fake user API's URL, with {id}")
	workers := flag.Int("workers", 4, "users seeded at once")
	flag.Parse()
	admin := os.Getenv("KNOWN_ADMIN_TOKEN")
	if admin == "" {
		fail(fmt.Errorf("KNOWN_ADMIN_TOKEN must be set"))
	}
	c := &client{url: *url, http: &http.Client{Timeout: 60 * time.Second}}

	var cp struct {
		CreateProject struct {
			Project    struct{ AppID string }
			SecretKey  string
			UserErrors userErrors
		}
	}
	if err := c.do(map[string]string{"Authorization": "Bearer " + admin},
		`mutation { createProject(input: {name: "Bench"}) { project { appId } secretKey userErrors { field code message } } }`, nil, &cp); err != nil {
		fail(fmt.Errorf("createProject: %w", err))
	}
	fail(check("createProject", cp.CreateProject.UserErrors))
	app, key := cp.CreateProject.Project.AppID, cp.CreateProject.SecretKey
	agent := map[string]string{"Agent-Secret-Key": key}

	if *profiles != "" {
		var up struct {
			UpdateProject struct{ UserErrors userErrors }
		}
		if err := c.do(agent, `mutation($u: String!) { updateProject(input: {userDataEndpoint: {enabled: true, url: $u}}) { userErrors { field code message } } }`,
			map[string]any{"u": *profiles}, &up); err != nil {
			fail(fmt.Errorf("updateProject: %w", err))
		}
		fail(check("updateProject", up.UpdateProject.UserErrors))
	}

	// Workers take the next index, so that conversations are created roughly oldest first, as
	// seed.mjs does (the page of 100 holds them all when n is 100).
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range max(*workers, 1) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= *n || stop {
					return
				}
				if err := seedUser(c, app, i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("user %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	fail(first)
	fmt.Printf("APP_ID=%s\nSECRET_KEY=%s\n", app, key)
}

func seedUser(c *client, app string, i int) error {
	var id struct {
		Identify struct {
			Session    *struct{ Token string }
			UserErrors userErrors
		}
	}
	co := i % 7
	if err := c.do(nil, `mutation($in: IdentifyInput!) { identify(input: $in) { session { token } userErrors { field code message } } }`,
		map[string]any{"in": map[string]any{"appId": app, "userId": fmt.Sprintf("d-%d", i), "name": fmt.Sprintf("User %d", i),
			"company": map[string]any{"id": fmt.Sprintf("co-%d", co), "name": fmt.Sprintf("Co %d", co)}}}, &id); err != nil {
		return fmt.Errorf("identify: %w", err)
	}
	if err := check("identify", id.Identify.UserErrors); err != nil {
		return err
	}
	session := map[string]string{"X-Widget-Session": id.Identify.Session.Token}
	var su struct {
		SetUser struct{ UserErrors userErrors }
	}
	if err := c.do(session, `mutation($in: SetUserInput!) { setUser(input: $in) { userErrors { field code message } } }`,
		map[string]any{"in": map[string]any{"appId": app, "id": fmt.Sprintf("d-%d", i),
			"organizations": []any{map[string]any{"id": "org-1", "name": "Org 1"}}}}, &su); err != nil {
		return fmt.Errorf("setUser: %w", err)
	}
	if err := check("setUser", su.SetUser.UserErrors); err != nil {
		return err
	}
	var sc struct {
		StartConversation struct{ UserErrors userErrors }
	}
	if err := c.do(session, `mutation($b: String!) { startConversation(input: {body: $b}) { userErrors { field code message } } }`,
		map[string]any{"b": fmt.Sprintf("hi %d", i)}, &sc); err != nil {
		return fmt.Errorf("startConversation: %w", err)
	}
	return check("startConversation", sc.StartConversation.UserErrors)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "seedknown:", err)
		os.Exit(1)
	}
}
