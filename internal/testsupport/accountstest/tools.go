package accountstest

import "path/filepath"

// Tool returns the path of one of the server's client programs (pg_dump,
// pg_restore), of the same version as the server.
func (s *Server) Tool(name string) string { return filepath.Join(s.bin, name) }
