"""HTTP/1.1 on both sides: the outbound client (http.client) and the daemon's port (http.server)."""
