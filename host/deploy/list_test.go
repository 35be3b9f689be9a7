package deploy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nodb-dev/nodb/host/auth/authtest"
	"github.com/nodb-dev/nodb/plugins/store"
)

// TestPluginListHidesUpstreamTokens: an administrator's cascade manifest may
// carry a token of another host in an upstream URL (access_token). A
// deploy:cascade token lists the cascades over views it may read, and
// used to get that manifest as stored: the other host's secret, in clear.
// It now sees the URL with the token's value replaced; the admin sees it.
func TestPluginListHidesUpstreamTokens(t *testing.T) {
	a, _, secrets := authtest.Tokens(t,
		authtest.Grant{Name: "ops", Scopes: []string{"admin"}},
		authtest.Grant{Name: "stats-bot", Scopes: []string{"read:todos", "deploy:cascade"}})
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
