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
// reply at a time.
//
// BenchmarkRead and BenchmarkReadDir re-measure this against pkg/sftp's
// File.ReadAt, File.WriteTo and Client.ReadDir, on pkg/sftp's server in
// this process (over loopback TCP; its allocations count too) and on
// OpenSSH's sftp-server in a child process (the allocations are the
// client's alone). Re-run with
//
//	go test -run '^$' -bench . -benchtime 2s -count 3 ./peers/pool/internal/sftpwire
//
// Measured 2026-12, 2 shared cores (load 7, so MB/s is noisy; medians of
// 3), reading a 32 MiB file in 1 MiB reads of 32 KiB requests:
//
//	server          client            MB/s   B/op         allocs/op
//	OpenSSH         sftpwire          1293   0.50 MB      6560
//	OpenSSH         sftpwire (255K)   1695   0.09 MB      1216
//	OpenSSH         pkg/sftp ReadAt    501   42.3 MB      7486
//	OpenSSH         pkg/sftp WriteTo   569   43.4 MB      5843
//	pkg/sftp        sftpwire           645   42.8 MB     19592
//	pkg/sftp        pkg/sftp ReadAt    319   84.5 MB     20457
//	pkg/sftp        pkg/sftp WriteTo   286   88.5 MB     19584
//
// pkg/sftp's client allocates about 1.3 bytes per byte read; this
// package 0.015 (255 KiB requests: 0.003), and reads 2 to 2.6 times as
// fast with the same requests (3.4 times with 255 KiB ones). A listing of
// 10,000 entries costs the same time either way (OpenSSH: 36 ms, pkg/sftp's
// server: 80 to 90 ms) and a quarter of pkg/sftp's allocations (10,693
// against 40,650 with OpenSSH), for 25% more bytes (4.7 MB against 3.8
// MB): listings are here for their bounds, not speed.
//
// Every parser of the peer's bytes checks declared lengths against the
// packet (and the packet against MaxPacket) before it allocates, and has
// a fuzz target (fuzz_test.go).
package sftpwire
