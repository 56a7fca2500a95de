// Package sftpwire is the SFTP v3 client for the bulk paths of the pool:
// reading files (OPEN, READ, CLOSE) and listing directories (OPENDIR,
// READDIR), on a session of its own. Everything else (stat, the limits
// extension, symlinks) stays with pkg/sftp on the connection's main
// session.
//
// It exists because pkg/sftp's client costs more on exactly these paths:
// it allocates a fresh buffer for every reply and copies the data out of
// it again, where a DATA reply here is read from the session straight
// into the caller's buffer; and its ReadDir reads a whole directory
// before it returns, so a hostile server can make it hold any number of
// entries, where ReadDir here stops at a limit or a budget, one NAME
// reply at a time. BenchmarkRead and BenchmarkReadDir measure both
// against pkg/sftp's File.ReadAt, File.WriteTo and Client.ReadDir on an
// in-process pkg/sftp server; README.md has the numbers and the command
// that re-runs them.
//
// Every parser of the peer's bytes checks declared lengths against the
// packet (and the packet against MaxPacket) before it allocates, and has
// a fuzz target (fuzz_test.go).
package sftpwire
