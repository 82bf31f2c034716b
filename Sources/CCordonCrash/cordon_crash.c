#include "cordon_crash.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define SLOT_COUNT 4096
#define ID_LIMIT 120

enum { SLOT_FREE = 0, SLOT_WRITING = 1, SLOT_READY = 2 };

static struct {
    _Atomic int state;
    char id[ID_LIMIT + 1];
} slots[SLOT_COUNT];

static _Atomic unsigned next_slot;
static int crash_fd = -1;

static const int fault_signals[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE};
#define FAULT_SIGNAL_COUNT (sizeof(fault_signals) / sizeof(fault_signals[0]))
static struct sigaction previous_actions[FAULT_SIGNAL_COUNT];
static int installed = 0;

int cordon_inflight_begin(const char *id, size_t length) {
    if (length > ID_LIMIT) length = ID_LIMIT;
    unsigned start = atomic_fetch_add(&next_slot, 1);
    for (unsigned k = 0; k < SLOT_COUNT; k++) {
        unsigned i = (start + k) % SLOT_COUNT;
        int expected = SLOT_FREE;
        if (atomic_compare_exchange_strong(&slots[i].state, &expected, SLOT_WRITING)) {
            memcpy(slots[i].id, id, length);
            slots[i].id[length] = 0;
            atomic_store(&slots[i].state, SLOT_READY);
            return (int)i;
        }
    }
    return -1;
}

void cordon_inflight_end(int slot) {
    if (slot >= 0 && slot < SLOT_COUNT) atomic_store(&slots[slot].state, SLOT_FREE);
}

int cordon_inflight_count(void) {
    int count = 0;
    for (int i = 0; i < SLOT_COUNT; i++) {
        if (atomic_load(&slots[i].state) == SLOT_READY) count++;
    }
    return count;
}

/// A buffer of text written out when full: async-signal-safe (write only).
struct out {
    char bytes[4096];
    size_t length;
};

static void flush(struct out *o) {
    size_t done = 0;
    while (done < o->length) {
        ssize_t n = write(crash_fd, o->bytes + done, o->length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    o->length = 0;
}

static void put(struct out *o, const char *text, size_t length) {
    for (size_t i = 0; i < length; i++) {
        if (o->length == sizeof(o->bytes)) flush(o);
        o->bytes[o->length++] = text[i];
    }
}

static void put_text(struct out *o, const char *text) { put(o, text, strlen(text)); }

static void put_number(struct out *o, long value) {
    char digits[24];
    size_t n = 0;
    unsigned long v = value < 0 ? (unsigned long)(-value) : (unsigned long)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < sizeof(digits));
    if (value < 0) put(o, "-", 1);
    while (n > 0) put(o, &digits[--n], 1);
}

static void on_fault(int signal, siginfo_t *info, void *context) {
    (void)context;
    if (crash_fd >= 0) {
        struct out o;
        o.length = 0;
        put_text(&o, "crash ");
        put_number(&o, (long)getpid());
        put_text(&o, " signal ");
        put_number(&o, signal);
        put_text(&o, "\n");
        for (int i = 0; i < SLOT_COUNT; i++) {
            if (atomic_load(&slots[i].state) != SLOT_READY) continue;
            put_text(&o, "item ");
            put_text(&o, slots[i].id);
            put_text(&o, "\n");
        }
        put_text(&o, "end ");
        put_number(&o, (long)getpid());
        put_text(&o, "\n");
        flush(&o);
        fsync(crash_fd);
    }
    if (info == NULL || info->si_code <= 0) {
        // Sent by a process (kill, raise, abort): returning would re-run nothing. The
        // default action ends the process now (a handler before ours, such as Swift's
        // backtracer, might return and let it go on).
        struct sigaction fallback;
        memset(&fallback, 0, sizeof(fallback));
        fallback.sa_handler = SIG_DFL;
        sigemptyset(&fallback.sa_mask);
        sigaction(signal, &fallback, NULL);
        raise(signal);
        return;
    }
    // A fault: put the previous disposition back; returning re-runs the faulting
    // instruction, which then goes where it would have gone without us (Swift's backtracer
    // reports it and ends the process).
    for (size_t k = 0; k < FAULT_SIGNAL_COUNT; k++) {
        if (fault_signals[k] == signal) {
            sigaction(signal, &previous_actions[k], NULL);
            break;
        }
    }
}

int cordon_crash_install(const char *path) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (crash_fd >= 0) close(crash_fd);
    crash_fd = fd;
    // Installed once: a second call only changes the file (saving our own handler as
    // "previous" would make a fault re-run it forever).
    if (installed) return 0;
    installed = 1;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t k = 0; k < FAULT_SIGNAL_COUNT; k++) {
        if (sigaction(fault_signals[k], &action, &previous_actions[k]) != 0) return -1;
    }
    return 0;
}
