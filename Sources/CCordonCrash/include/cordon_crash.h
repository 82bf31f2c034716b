#ifndef CORDON_CRASH_H
#define CORDON_CRASH_H

#include <stddef.h>

/// What a process was working on when it crashed, for `Sources/CordonCore/Engine/CrashGuard.swift`.
///
/// Work in progress (a finding being handled, an incident's evaluation being run) is
/// registered in a fixed table of slots. When the process dies on a fault signal (SIGILL
/// and SIGTRAP from a Swift trap, SIGSEGV, SIGBUS, SIGABRT, SIGFPE), a handler writes the
/// registered items to a file opened beforehand, with async-signal-safe calls only, then
/// lets the signal take its course (the previous handler, such as Swift's backtracer, or
/// the default action). SIGKILL cannot be caught: a kill is not a crash.

/// Opens `path` for appending and installs the handler. Returns 0, or -1 with errno set.
int cordon_crash_install(const char *path);

/// Registers an item in progress (at most 120 bytes of `id` are kept). Returns its slot,
/// or -1 when every slot is taken (the item is then not tracked).
int cordon_inflight_begin(const char *id, size_t length);

/// Unregisters the item of a slot `cordon_inflight_begin` returned (-1 is ignored).
void cordon_inflight_end(int slot);

/// How many items are registered now (tests).
int cordon_inflight_count(void);

#endif
