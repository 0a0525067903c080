package main

import (
	"fmt"
	"testing"
)

// startBenchKnown starts Known for a benchmark, logging only warnings (every request would
// otherwise add a log line).
func startBenchKnown(b *testing.B) *knownServer {
	b.Helper()
	env := testEnv(b)
	env["KNOWN_LOG_LEVEL"] = "warn"
	return startRun(b, env)
}

// BenchmarkCreateUser measures createUser through HTTP, with a unique email per iteration.
func BenchmarkCreateUser(b *testing.B) {
	k := startBenchKnown(b)
	_, key := createProject(b, k.URL, "BenchCreate")
	i := 0
	for b.Loop() {
		p := tryCreateUser(b, k.URL, key, map[string]any{"email": fmt.Sprintf("bench%d@example.com", i), "firstName": "Bench"})
		if p.User == nil || len(p.UserErrors) != 0 {
			b.Fatalf("createUser %d: user %v, userErrors %+v", i, p.User, p.UserErrors)
		}
		i++
	}
}

// BenchmarkSearchUsers measures searchUsers by email through HTTP among 100 users.
func BenchmarkSearchUsers(b *testing.B) {
	k := startBenchKnown(b)
	_, key := createProject(b, k.URL, "BenchSearch")
	const n = 100
	ids := make([]string, n)
	for i := range n {
		ids[i] = createUser(b, k.URL, key, map[string]any{"email": fmt.Sprintf("search%d@example.com", i)}).ID
	}
	query := `query($email: String) { searchUsers(email: $email) { user { id email } conversationIds } }`
	i := 0
	for b.Loop() {
		r := gql(b, k.URL, key, query, map[string]any{"email": fmt.Sprintf("search%d@example.com", i%n)})
		var data struct {
			SearchUsers []struct{ User struct{ ID string } }
		}
		r.decode(b, &data)
		if len(data.SearchUsers) != 1 || data.SearchUsers[0].User.ID != ids[i%n] {
			b.Fatalf("searchUsers(search%d@example.com) = %s", i%n, r.Body)
		}
		i++
	}
}
