/* sysinfo.h: what a benchmark record says about where it ran, and the memory figures it needs.
 *
 * Owns: the host description (CPU model, cores, OpenMP threads, memory), the build description
 * (git revision, compiler, flags), peak resident memory of this process (VmHWM, resettable where
 * the kernel allows, getrusage otherwise) and the memory available for a run (MemAvailable of
 * /proc/meminfo, or an override for tests: EVA_MEM_AVAILABLE=<bytes>). Never prints.
 */
#ifndef EVA_SYSINFO_H
#define EVA_SYSINFO_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char cpu_model[128];   /* "model name" of /proc/cpuinfo, or "unknown" */
    int cpus_online;       /* sysconf(_SC_NPROCESSORS_ONLN) */
    int omp_threads;       /* threads the reference uses (1 without OpenMP) */
    int64_t mem_total;     /* bytes, MemTotal (-1 unknown) */
    char hostname[64];
    char git_rev[48];      /* EVA_GIT_REV */
    char version[24];      /* EVA_VERSION */
    char compiler[96];     /* __VERSION__ */
    char flags[160];       /* EVA_BUILD_FLAGS */
    bool cuda_build;       /* compiled with EVA_HAVE_CUDA */
    bool sanitizers;       /* AddressSanitizer build: timings are not meaningful */
} eva_sysinfo;

void eva_sysinfo_get(eva_sysinfo *si);
/* One line: "Intel(R) Xeon(R) Processor, 2 CPUs, 2 OpenMP threads, 23.5 GiB". */
void eva_sysinfo_host_line(const eva_sysinfo *si, char *buf, int cap);

/* Bytes a new allocation can take without swapping: EVA_MEM_AVAILABLE when set, else
 * MemAvailable; -1 when neither can be read. */
int64_t eva_mem_available(void);
/* Peak resident set of this process in bytes (VmHWM; getrusage's ru_maxrss as a fallback). */
int64_t eva_peak_rss(void);
/* Current resident set in bytes (VmRSS), -1 if unknown. */
int64_t eva_current_rss(void);
/* Resets the peak to the current RSS (writes 5 to /proc/self/clear_refs); false where the
 * kernel does not allow it, in which case eva_peak_rss() stays the lifetime peak. */
bool eva_peak_rss_reset(void);

/* Monotonic wall clock in seconds. */
double eva_now(void);

#endif
