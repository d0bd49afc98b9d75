// Package ui is the registrar's web UI: a page at /ui/ that lists the
// services and, for the one selected, its instances, kept live by the
// registrar's blocking queries (GET /v1/services?index=N). It is plain
// HTML, CSS and JavaScript embedded in the binary: no build step, nothing
// loaded from elsewhere.
//
// The page itself is public; its data calls go to /v1 like any client's
// and carry the bearer token the page asks for when the registrar answers
// 401 (reads guarded by -auth-reads). Registry data (tags, meta, reasons)
// is written into the page as text, never as markup, and every answer
// carries a Content-Security-Policy that allows only the page's own files.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the path the UI is served under.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every UI answer: the page's own
// scripts, styles and API calls only; no inline script or style, no
// plugins, no framing, no <base> and no form posts elsewhere.
const ContentSecurityPolicy = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// file is one embedded file, read once.
type file struct {
	ctype string
	body  []byte
	etag  string
}

// types are the content types of the files served; a file of another
// extension is not served.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".png":  "image/png",
	".svg":  "image/svg+xml",
}

// Register adds the UI's routes to mux: GET /ui redirects to /ui/, which
// serves the page, and GET /ui/<file> each embedded file. Any other path
// under /ui/ is left to mux's other routes (the registrar's JSON 404).
func Register(mux *http.ServeMux) {
	byName := files()
	h := handler(byName)
	mux.Handle("GET /ui", h)
	mux.Handle("GET "+Prefix+"{$}", h)
	for name := range byName {
		if name != "index.html" {
			mux.Handle("GET "+Prefix+name, h)
		}
	}
}

// Handler serves the UI for requests to /ui, /ui/ and /ui/<file>, and
// answers 404 for any other path.
func Handler() http.Handler { return handler(files()) }

func handler(byName map[string]*file) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		setHeaders(w.Header())
		if req.URL.Path == "/ui" {
			http.Redirect(w, req, Prefix, http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(req.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		f := byName[name]
		if !ok || f == nil {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", f.ctype)
		w.Header().Set("ETag", f.etag)
		// Revalidate each load: a new binary serves new files at once.
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(f.body))
	})
}

// setHeaders sets the security headers every UI answer carries.
func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// files reads the embedded files, by name; the set is fixed at build time,
// so an error is a build fault.
func files() map[string]*file {
	out := map[string]*file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := types[path.Ext(p)]
		if !ok {
			return nil
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path.Base(p)] = &file{ctype: ctype, body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("ui: embedded files: %v", err))
	}
	return out
}
