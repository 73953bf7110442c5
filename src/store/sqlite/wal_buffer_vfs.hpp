#pragma once
// A SQLite VFS shim that coalesces the writer connection's WAL appends into one pwrite per commit.
//
// Why: SQLite writes every WAL frame with two pwrite() calls (24-byte header + page). A group
// commit of a few dozen jobs touches hundreds of pages, and on this kind of machine (page-table
// isolation, paravirtualised kernel) each syscall is expensive: measured ~30 write syscalls per
// accepted job. The shim buffers contiguous WAL writes in memory and issues them as one write
// when SQLite syncs the WAL, reads from it, asks its size, truncates or closes it.
//
// Safety: only valid with synchronous=FULL, where SQLite syncs the WAL at every commit BEFORE it
// publishes the new frames in the wal-index, so no other connection can ever look for a frame
// that is still in the buffer. With NORMAL there is no such sync; SqliteDb uses the shim only
// for the writer connection and only with FULL. Non-WAL files pass straight through.
namespace syncwell::store {

// Registers the VFS (idempotent, thread-safe) and returns its name for sqlite3_open_v2.
const char* WalBufferVfsName();

}  // namespace syncwell::store
