// Package hostile attacks the NetSel runner as its clients could: it starts
// `netsel serve` as a real process, with a low descriptor limit so that
// exhaustion comes fast, and plays the hostile or merely heavy client —
// loops through the proxies, floods of services, connections and blocking
// queries, registrations aimed at NetSel's own listeners. Each test asserts
// that the process stays up, that /v1/health tells the truth, that DNS and
// both proxies keep answering for a service nobody attacked, and that
// every instance that got a 200 is still there.
//
// The package holds only tests.
package hostile
