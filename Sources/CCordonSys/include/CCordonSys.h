#ifndef CCORDONSYS_H
#define CCORDONSYS_H

/// Flushes the file system holding `fd` (Linux syncfs; elsewhere fsync of `fd`).
/// Returns 0 on success, -1 with errno set.
int cordon_syncfs(int fd);

#endif
