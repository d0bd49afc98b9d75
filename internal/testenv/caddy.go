package testenv

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// caddyV2Mu serialises StartCaddy: Caddy v2 runs one config per process.
var caddyV2Mu sync.Mutex

// StartCaddy runs Caddy in-process with jsonConfig and stops it when the
// test ends. The admin endpoint is disabled and the config is not persisted
// unless jsonConfig says otherwise. Caddy is process-global: tests that call
// StartCaddy must not run in parallel with each other; a second call in one
// test replaces the first config. The test's imports decide which modules
// exist.
func StartCaddy(t testing.TB, jsonConfig []byte) {
	t.Helper()
	cfg, err := withTestAdmin(jsonConfig)
	if err != nil {
		t.Fatalf("caddy config: %v", err)
	}
	caddyV2Mu.Lock()
	if err := caddy.Load(cfg, true); err != nil {
		caddyV2Mu.Unlock()
		t.Fatalf("load caddy config: %v", err)
	}
	caddyV2Mu.Unlock()
	t.Cleanup(func() {
		caddyV2Mu.Lock()
		defer caddyV2Mu.Unlock()
		if err := caddy.Stop(); err != nil {
			t.Errorf("stop caddy: %v", err)
		}
	})
}

// withTestAdmin disables the admin endpoint and config persistence when the
// config does not set "admin".
func withTestAdmin(b []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if _, ok := m["admin"]; !ok {
		m["admin"] = json.RawMessage(`{"disabled":true,"config":{"persist":false}}`)
	}
	return json.Marshal(m)
}
