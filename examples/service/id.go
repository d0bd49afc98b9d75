package main

import "sync"

// idHolder holds the instance id, which the registrar may assign after the
// servers have started.
type idHolder struct {
	mu sync.Mutex
	id string
}

func (h *idHolder) set(id string) {
	h.mu.Lock()
	h.id = id
	h.mu.Unlock()
}

func (h *idHolder) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id
}
