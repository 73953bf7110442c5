#include "store/sqlite/wal_buffer_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

namespace syncwell::store {
namespace {

constexpr size_t kMaxBuffer = 8 << 20;  // flush early beyond this many bytes

sqlite3_vfs g_vfs;
sqlite3_vfs* g_parent = nullptr;
sqlite3_io_methods g_methods;

struct BufFile {
  sqlite3_file base;  // must be first: SQLite sees this
  bool is_wal;
  std::string* buf;  // pending bytes, contiguous from buf_off
  sqlite3_int64 buf_off;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

BufFile* B(sqlite3_file* f) { return reinterpret_cast<BufFile*>(f); }

int Flush(BufFile* f) {
  if (!f->buf || f->buf->empty()) return SQLITE_OK;
  // The unix VFS masks a single write to 0x1ffff bytes (and reports SQLITE_FULL when the masked
  // length is 0), so hand it aligned chunks of at most 64 KiB.
  constexpr size_t kChunk = 64 << 10;
  int rc = SQLITE_OK;
  for (size_t done = 0; done < f->buf->size() && rc == SQLITE_OK; done += kChunk) {
    const size_t n = std::min(kChunk, f->buf->size() - done);
    rc = f->real()->pMethods->xWrite(f->real(), f->buf->data() + done, static_cast<int>(n),
                                     f->buf_off + static_cast<sqlite3_int64>(done));
  }
  f->buf->clear();
  return rc;
}

int Close(sqlite3_file* file) {
  BufFile* f = B(file);
  int rc = Flush(f);
  int rc2 = f->real()->pMethods ? f->real()->pMethods->xClose(f->real()) : SQLITE_OK;
  delete f->buf;
  f->buf = nullptr;
  return rc != SQLITE_OK ? rc : rc2;
}

int Read(sqlite3_file* file, void* out, int n, sqlite3_int64 off) {
  BufFile* f = B(file);
  if (f->buf && !f->buf->empty() && off < f->buf_off + static_cast<sqlite3_int64>(f->buf->size()) &&
      off + n > f->buf_off) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  return f->real()->pMethods->xRead(f->real(), out, n, off);
}

int Write(sqlite3_file* file, const void* data, int n, sqlite3_int64 off) {
  BufFile* f = B(file);
  if (!f->is_wal) return f->real()->pMethods->xWrite(f->real(), data, n, off);
  std::string& b = *f->buf;
  const sqlite3_int64 end = f->buf_off + static_cast<sqlite3_int64>(b.size());
  if (!b.empty() && off >= f->buf_off && off + n <= end) {
    // Rewrite of a frame already in the buffer (SQLite rewrites frames within a transaction).
    std::memcpy(b.data() + (off - f->buf_off), data, static_cast<size_t>(n));
    return SQLITE_OK;
  }
  if (!b.empty() && off != end) {
    if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (b.empty()) f->buf_off = off;
  b.append(static_cast<const char*>(data), static_cast<size_t>(n));
  if (b.size() >= kMaxBuffer) return Flush(f);
  return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  BufFile* f = B(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real()->pMethods->xTruncate(f->real(), size);
}

int Sync(sqlite3_file* file, int flags) {
  BufFile* f = B(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real()->pMethods->xSync(f->real(), flags);
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  BufFile* f = B(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real()->pMethods->xFileSize(f->real(), size);
}

#define SW_FORWARD(name, sig, args) \
  int name sig { return B(file)->real()->pMethods->x##name args; }
SW_FORWARD(Lock, (sqlite3_file * file, int l), (B(file)->real(), l))
SW_FORWARD(Unlock, (sqlite3_file * file, int l), (B(file)->real(), l))
SW_FORWARD(CheckReservedLock, (sqlite3_file * file, int* out), (B(file)->real(), out))
SW_FORWARD(SectorSize, (sqlite3_file * file), (B(file)->real()))
SW_FORWARD(DeviceCharacteristics, (sqlite3_file * file), (B(file)->real()))
SW_FORWARD(ShmMap, (sqlite3_file * file, int pg, int sz, int ext, void volatile** pp),
           (B(file)->real(), pg, sz, ext, pp))
SW_FORWARD(ShmLock, (sqlite3_file * file, int off, int n, int flags),
           (B(file)->real(), off, n, flags))
SW_FORWARD(ShmUnmap, (sqlite3_file * file, int del), (B(file)->real(), del))
SW_FORWARD(Fetch, (sqlite3_file * file, sqlite3_int64 off, int n, void** pp),
           (B(file)->real(), off, n, pp))
SW_FORWARD(Unfetch, (sqlite3_file * file, sqlite3_int64 off, void* p), (B(file)->real(), off, p))
#undef SW_FORWARD

int FileControl(sqlite3_file* file, int op, void* arg) {
  BufFile* f = B(file);
  if (int rc = Flush(f); rc != SQLITE_OK) return rc;
  return f->real()->pMethods->xFileControl(f->real(), op, arg);
}

void ShmBarrier(sqlite3_file* file) { B(file)->real()->pMethods->xShmBarrier(B(file)->real()); }

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  BufFile* f = B(file);
  f->base.pMethods = nullptr;
  f->buf = nullptr;
  f->buf_off = 0;
  f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  int rc = g_parent->xOpen(g_parent, name, f->real(), flags, out_flags);
  if (rc != SQLITE_OK) return rc;
  f->buf = new (std::nothrow) std::string();
  if (!f->buf) {
    f->real()->pMethods->xClose(f->real());
    return SQLITE_NOMEM;
  }
  f->base.pMethods = &g_methods;
  return SQLITE_OK;
}

void Register() {
  g_parent = sqlite3_vfs_find(nullptr);
  g_vfs = *g_parent;
  g_vfs.iVersion = std::min(g_parent->iVersion, 3);
  g_vfs.szOsFile = static_cast<int>(sizeof(BufFile)) + g_parent->szOsFile;
  g_vfs.zName = "syncwell-walbuf";
  g_vfs.pNext = nullptr;
  g_vfs.pAppData = nullptr;
  g_vfs.xOpen = &Open;
  g_methods = sqlite3_io_methods{};
  g_methods.iVersion = 3;
  g_methods.xClose = &Close;
  g_methods.xRead = &Read;
  g_methods.xWrite = &Write;
  g_methods.xTruncate = &Truncate;
  g_methods.xSync = &Sync;
  g_methods.xFileSize = &FileSize;
  g_methods.xLock = &Lock;
  g_methods.xUnlock = &Unlock;
  g_methods.xCheckReservedLock = &CheckReservedLock;
  g_methods.xFileControl = &FileControl;
  g_methods.xSectorSize = &SectorSize;
  g_methods.xDeviceCharacteristics = &DeviceCharacteristics;
  g_methods.xShmMap = &ShmMap;
  g_methods.xShmLock = &ShmLock;
  g_methods.xShmBarrier = &ShmBarrier;
  g_methods.xShmUnmap = &ShmUnmap;
  g_methods.xFetch = &Fetch;
  g_methods.xUnfetch = &Unfetch;
  sqlite3_vfs_register(&g_vfs, 0);
}

}  // namespace

const char* WalBufferVfsName() {
  static std::once_flag once;
  std::call_once(once, Register);
  return g_vfs.zName;
}

}  // namespace syncwell::store
