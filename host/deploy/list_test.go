package deploy_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/host/auth"
	"github.com/nodb-dev/nodb/plugins/store"
)

// TestPluginListHidesUpstreamTokens: an administrator's cascade manifest may
// carry a token of another host in an upstream URL (access_token). A
// deploy:cascade token lists the cascades over views it may read, and
// used to get that manifest as stored: the other host's secret, in clear.
// It now sees the URL with the token's value replaced; the admin sees it.
func TestPluginListHidesUpstreamTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	secrets := map[string]string{}
	err := auth.Update(path, func(f *auth.File) error {
		for name, scopes := range map[string][]string{"ops": {"admin"}, "stats-bot": {"read:todos", "deploy:cascade"}} {
			tok, secret, err := auth.NewToken(name, scopes, auth.Limits{})
			if err != nil {
				return err
			}
			secrets[name] = secret
			f.Add(tok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := startHost(t, a)
	const upstreamSecret = "nodb_0123456789abcdef_upstreamSecretOfAnotherHost"
	stats := goWasm(t, "stats", "./examples/todos/stats") // a cascade over todos
	r := upload(t, h, secrets["ops"], stats, map[string]any{"name": "remote-stats",
		"upstreams": map[string]string{"todos": "ws://10.0.0.5:7070/v1/ws?view=todos&access_token=" + upstreamSecret}})
	if r.Status != 201 {
		t.Fatalf("admin upload: %d %s", r.Status, r.Body)
	}
	var up struct {
		Manifest store.Manifest `json:"manifest"`
	}
	json.Unmarshal([]byte(r.Body), &up)
	sha := up.Manifest.SHA256

	r = call(t, "GET", h.base+"/v1/plugins", secrets["stats-bot"], nil)
	if r.Status != 200 || !strings.Contains(r.Body, sha) || !strings.Contains(r.Body, "10.0.0.5:7070") {
		t.Fatalf("the bot's plugin list: %d %s", r.Status, r.Body)
	}
	if strings.Contains(r.Body, upstreamSecret) {
		t.Errorf("a deploy:cascade token's plugin list holds another host's token:\n%s", r.Body)
	}
	// Uploading the same bytes answers with the version stored before.
	r = upload(t, h, secrets["stats-bot"], stats, map[string]any{"name": "my-stats"})
	if r.Status != 200 || !strings.Contains(r.Body, sha) {
		t.Fatalf("the bot uploads the same module: %d %s", r.Status, r.Body)
	}
	if strings.Contains(r.Body, upstreamSecret) {
		t.Errorf("a deploy:cascade token's upload answer holds another host's token:\n%s", r.Body)
	}
	if r := call(t, "GET", h.base+"/v1/plugins", secrets["ops"], nil); !strings.Contains(r.Body, upstreamSecret) {
		t.Errorf("the admin's plugin list lost the upstream URL: %s", r.Body)
	}
}
