package accountstest

// nobody is who the server runs as when the tests run as root (postgres
// refuses to run as root): nobody/nogroup, 65534 on Linux.
func nobody() (ids, error) { return ids{uid: 65534, gid: 65534}, nil }
