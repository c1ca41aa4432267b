"""A file system in memory, mounted with FUSE, whose fsync of a file holding
MARKER waits until the file RELEASE exists (at most 30 s): a slow fsync,
the way a stalled mount or a busy disk makes one, for the one write a test
wants late.

    slow_fsync_fs.py MOUNTPOINT MARKER RELEASE
"""
import errno
import os
import stat
import sys
import threading
import time

from fusepy import FUSE, FuseOSError, Operations


class SlowFsync(Operations):
    def __init__(self, marker, release):
        self.marker, self.release_path = marker.encode(), release
        self.mutex = threading.Lock()
        self.files = {"/": dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)}
        self.data = {}

    def getattr(self, path, fh=None):
        with self.mutex:
            if path not in self.files:
                raise FuseOSError(errno.ENOENT)
            attr = dict(self.files[path], st_uid=0, st_gid=0, st_atime=0, st_mtime=0, st_ctime=0)
            attr["st_size"] = len(self.data.get(path, b""))
            return attr

    def readdir(self, path, fh):
        with self.mutex:
            return [".", ".."] + [p[1:] for p in self.files if p != "/"]

    def create(self, path, mode, fi=None):
        with self.mutex:
            if path in self.files:
                raise FuseOSError(errno.EEXIST)
            self.files[path] = dict(st_mode=stat.S_IFREG | (mode & 0o7777), st_nlink=1)
            self.data[path] = b""
        return 0

    def open(self, path, flags):
        return 0

    def read(self, path, size, offset, fh):
        with self.mutex:
            return self.data[path][offset:offset + size]

    def write(self, path, buf, offset, fh):
        with self.mutex:
            d = self.data[path]
            self.data[path] = d[:offset] + buf + d[offset + len(buf):]
        return len(buf)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self.data[path] = self.data[path][:length]

    def fsync(self, path, datasync, fh):
        with self.mutex:
            slow = self.marker in self.data.get(path, b"")
        deadline = time.monotonic() + 30
        while slow and not os.path.exists(self.release_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        return 0

    def rename(self, old, new):
        with self.mutex:
            if old not in self.files:
                raise FuseOSError(errno.ENOENT)
            self.files[new] = self.files.pop(old)
            self.data[new] = self.data.pop(old, b"")

    def unlink(self, path):
        with self.mutex:
            if path not in self.files:
                raise FuseOSError(errno.ENOENT)
            del self.files[path]
            self.data.pop(path, None)

    def chmod(self, path, mode):
        return 0

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        return 0


if __name__ == "__main__":
    mountpoint, marker, release = sys.argv[1:4]
    FUSE(SlowFsync(marker, release), mountpoint, foreground=True, nothreads=False)
