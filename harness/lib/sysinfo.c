/* sysinfo.c: host/build description, resident memory and available memory (Linux /proc). */
#include "sysinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ref_ops.h"

#ifndef EVA_GIT_REV
#define EVA_GIT_REV "unknown"
#endif
#ifndef EVA_VERSION
#define EVA_VERSION "0"
#endif
#ifndef EVA_BUILD_FLAGS
#define EVA_BUILD_FLAGS ""
#endif

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Value (in kB) of "key:" in a /proc file of "key: value kB" lines, or -1. */
static int64_t proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    size_t kl = strlen(key);
    int64_t v = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

void eva_sysinfo_get(eva_sysinfo *si) {
    memset(si, 0, sizeof *si);
    copy_str(si->cpu_model, sizeof si->cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) != 0) continue;
            char *p = strchr(line, ':');
            if (!p) continue;
            p++;
            while (*p == ' ' || *p == '\t') p++;
            p[strcspn(p, "\n")] = '\0';
            copy_str(si->cpu_model, sizeof si->cpu_model, p);
            break;
        }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    si->cpus_online = n > 0 ? (int)n : 1;
    si->omp_threads = eva_ref_threads();
    int64_t kb = proc_kb("/proc/meminfo", "MemTotal");
    si->mem_total = kb < 0 ? -1 : kb * 1024;
    if (gethostname(si->hostname, sizeof si->hostname) != 0) copy_str(si->hostname, sizeof si->hostname, "unknown");
    si->hostname[sizeof si->hostname - 1] = '\0';
    copy_str(si->git_rev, sizeof si->git_rev, EVA_GIT_REV);
    copy_str(si->version, sizeof si->version, EVA_VERSION);
    copy_str(si->compiler, sizeof si->compiler, "gcc-compatible " __VERSION__);
    copy_str(si->flags, sizeof si->flags, EVA_BUILD_FLAGS);
#ifdef EVA_HAVE_CUDA
    si->cuda_build = true;
#endif
#if defined(__SANITIZE_ADDRESS__)
    si->sanitizers = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    si->sanitizers = true;
#endif
#endif
}

void eva_sysinfo_host_line(const eva_sysinfo *si, char *buf, int cap) {
    snprintf(buf, (size_t)cap, "%s, %d CPUs, %d threads, %.1f GiB", si->cpu_model, si->cpus_online,
             si->omp_threads, si->mem_total > 0 ? (double)si->mem_total / (1 << 30) : 0.0);
}

int64_t eva_mem_available(void) {
    const char *e = getenv("EVA_MEM_AVAILABLE");
    if (e && *e) {
        char *end;
        long long v = strtoll(e, &end, 10);
        if (end != e && v >= 0) return (int64_t)v;
    }
    int64_t kb = proc_kb("/proc/meminfo", "MemAvailable");
    return kb < 0 ? -1 : kb * 1024;
}

int64_t eva_peak_rss(void) {
    int64_t kb = proc_kb("/proc/self/status", "VmHWM");
    if (kb >= 0) return kb * 1024;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return (int64_t)ru.ru_maxrss * 1024;
    return -1;
}

int64_t eva_current_rss(void) {
    int64_t kb = proc_kb("/proc/self/status", "VmRSS");
    return kb < 0 ? -1 : kb * 1024;
}

bool eva_peak_rss_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    if (fclose(f) != 0) ok = false;
    return ok;
}

double eva_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
