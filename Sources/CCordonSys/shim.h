// System calls glibc declares only with _GNU_SOURCE, which Swift's Glibc module does not
// import.
#ifndef CCORDONSYS_SHIM_H
#define CCORDONSYS_SHIM_H

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/// rename(2) that fails with EEXIST instead of replacing an existing target.
static inline int cordon_rename_noreplace(const char *from, const char *to) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

/// Names the calling thread (up to 15 bytes) for `top -H`, `ps -L` and profilers.
static inline void cordon_name_thread(const char *name) {
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

#endif
